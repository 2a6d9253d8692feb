#include "util/log_escape.h"
#include "util/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <sstream>

namespace nocstor {
namespace {

TEST(LogEscape, PrintableTextAndUtf8AreKept) {
    EXPECT_EQ(log_escaped("nqn.2014-08.org.nvmexpress:uuid:1234"),
              "nqn.2014-08.org.nvmexpress:uuid:1234");
    EXPECT_EQ(log_escaped("50 \xC2\xB5s, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x92\xBE"),
              "50 \xC2\xB5s, caf\xC3\xA9, \xE2\x82\xAC, \xF0\x9F\x92\xBE");
}

TEST(LogEscape, ControlBytesAreEscaped) {
    EXPECT_EQ(log_escaped("a\nb\rc\td"), "a\\nb\\rc\\td");
    EXPECT_EQ(log_escaped(std::string("x\0y", 3)), "x\\x00y");
    EXPECT_EQ(log_escaped("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
    EXPECT_EQ(log_escaped("del\x7f"), "del\\x7f");
}

TEST(LogEscape, InvalidAndDangerousUtf8IsEscaped) {
    EXPECT_EQ(log_escaped("\xff\xfe"), "\\xff\\xfe");
    EXPECT_EQ(log_escaped("\xC2"), "\\xc2");                    // truncated sequence
    EXPECT_EQ(log_escaped("\xC0\xAF"), "\\xc0\\xaf");           // overlong '/'
    EXPECT_EQ(log_escaped("\xED\xA0\x80"), "\\xed\\xa0\\x80");  // surrogate
    EXPECT_EQ(log_escaped("\xC2\x9B"
                          "2J"),
              "\\u{009b}2J");                                 // C1 CSI
    EXPECT_EQ(log_escaped("a\xE2\x80\xA8z"), "a\\u{2028}z");  // line separator
    EXPECT_EQ(log_escaped("\xE2\x80\xAE"
                          "txt.exe"),
              "\\u{202e}txt.exe");  // right-to-left override
}

TEST(LogEscape, EveryByteValueGivesOneLineOfPrintableText) {
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    const std::string out = log_escaped(all);
    for (unsigned char c : out) {
        EXPECT_TRUE((c >= 0x20 && c < 0x7F)) << "byte " << int(c) << " left in " << out;
    }
}

// The formatter every logger uses escapes the message, so no call site has to.
TEST(LogEscape, LoggerWritesForgedLinesAsOneLine) {
    std::ostringstream os;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(os);
    spdlog::logger logger("nvmf", sink);
    logger.set_formatter(make_log_formatter());
    logger.info("Connect from host '{}' refused",
                "evil\n[2026-01-01 00:00:00.000] [rpc] [info] fake line\x1b]0;pwned\x07");
    const std::string line = os.str();
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;  // only the terminating newline
    EXPECT_EQ(line.find('\x1b'), std::string::npos);
    EXPECT_EQ(line.find('\x07'), std::string::npos);
    EXPECT_NE(line.find("evil\\n[2026-01-01"), std::string::npos) << line;
    EXPECT_NE(line.find("[nvmf] [info] Connect from host"), std::string::npos) << line;
}

}  // namespace
}  // namespace nocstor
