// Escaping of log text, so that a peer-controlled string (an NQN from a Connect, an HTTP path, an
// RPC method name) can never forge a log line or drive the operator's terminal. Every log line
// passes through it (the formatter of util/log.cpp escapes the whole message), so no call site
// has to remember to.
#pragma once

#include <string>
#include <string_view>

namespace nocstor {

// Appends `in` to *out with every byte that is not printable escaped: \n \r \t as such, other
// C0 controls, DEL and bytes that are not valid UTF-8 as \xNN, and the UTF-8 code points that
// terminals or viewers act on (C1 controls U+0080-U+009F, line/paragraph separators, bidi
// overrides and isolates) as \u{NNNN}. Printable ASCII and other valid UTF-8 are kept.
void append_log_escaped(std::string_view in, std::string* out);

inline std::string log_escaped(std::string_view in) {
    std::string out;
    append_log_escaped(in, &out);
    return out;
}

}  // namespace nocstor
