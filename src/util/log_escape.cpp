#include "util/log_escape.h"

#include <cstdint>

namespace nocstor {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_hex_byte(unsigned char c, std::string* out) {
    out->append("\\x");
    out->push_back(kHex[c >> 4]);
    out->push_back(kHex[c & 0xF]);
}

// Length of the UTF-8 sequence at s (2-4) and its code point, or 0 if it is not well formed
// (overlong forms, surrogates and values above U+10FFFF are not).
size_t decode_utf8(std::string_view s, uint32_t* cp) {
    const auto b0 = static_cast<unsigned char>(s[0]);
    size_t len;
    uint32_t v, min;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2, v = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, v = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, v = b0 & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (s.size() < len) return 0;
    for (size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[i]);
        if ((b & 0xC0) != 0x80) return 0;
        v = (v << 6) | (b & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

// Code points that are valid but act on a terminal or rearrange what the reader sees.
bool is_dangerous_code_point(uint32_t cp) {
    return (cp >= 0x80 && cp <= 0x9F) ||      // C1 controls (0x9B is CSI on some terminals)
           cp == 0x2028 || cp == 0x2029 ||    // line / paragraph separator
           (cp >= 0x202A && cp <= 0x202E) ||  // bidi embeddings and overrides
           (cp >= 0x2066 && cp <= 0x2069) ||  // bidi isolates
           cp == 0xFEFF;                      // zero-width no-break space / BOM
}

}  // namespace

void append_log_escaped(std::string_view in, std::string* out) {
    out->reserve(out->size() + in.size());
    size_t i = 0;
    while (i < in.size()) {
        const auto c = static_cast<unsigned char>(in[i]);
        if (c >= 0x20 && c < 0x7F) {
            out->push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
                case '\n':
                    out->append("\\n");
                    break;
                case '\r':
                    out->append("\\r");
                    break;
                case '\t':
                    out->append("\\t");
                    break;
                default:
                    append_hex_byte(c, out);
            }
            ++i;
            continue;
        }
        uint32_t cp = 0;
        const size_t len = decode_utf8(in.substr(i), &cp);
        if (len == 0) {
            append_hex_byte(c, out);
            ++i;
        } else if (is_dangerous_code_point(cp)) {
            out->append("\\u{");
            for (int shift = cp > 0xFFFF ? 20 : 12; shift >= 0; shift -= 4)
                out->push_back(kHex[(cp >> shift) & 0xF]);
            out->push_back('}');
            i += len;
        } else {
            out->append(in.substr(i, len));
            i += len;
        }
    }
}

}  // namespace nocstor
