#include "util/cpumask.h"

#include <cctype>

namespace nocstor {

namespace {

constexpr int kMaxCore = 1023;

bool parse_list(const std::string& s, std::set<int>* cores, std::string* err) {
    size_t i = 1;
    auto number = [&](int* out) {
        if (i >= s.size() || !isdigit(static_cast<unsigned char>(s[i]))) return false;
        long v = 0;
        while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) {
            v = v * 10 + (s[i++] - '0');
            if (v > kMaxCore) return false;
        }
        *out = int(v);
        return true;
    };
    for (;;) {
        int lo, hi;
        if (!number(&lo)) break;
        hi = lo;
        if (i < s.size() && s[i] == '-') {
            ++i;
            if (!number(&hi) || hi < lo) break;
        }
        for (int c = lo; c <= hi; ++c) cores->insert(c);
        if (i < s.size() && s[i] == ',') {
            ++i;
            continue;
        }
        if (i == s.size() - 1 && s[i] == ']') return true;
        break;
    }
    *err =
        "cpumask '" + s + "' is not a list like [0,2-3] of cores up to " + std::to_string(kMaxCore);
    return false;
}

}  // namespace

bool parse_cpumask(const std::string& mask, std::set<int>* cores, std::string* err) {
    cores->clear();
    if (!mask.empty() && mask.front() == '[') {
        if (!parse_list(mask, cores, err)) return false;
    } else {
        std::string hex = mask;
        if (hex.size() > 2 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X'))
            hex = hex.substr(2);
        if (hex.empty() || hex.size() > 256) {
            *err = "cpumask '" + mask + "' is empty or too long";
            return false;
        }
        for (size_t k = 0; k < hex.size(); ++k) {
            const char ch = hex[hex.size() - 1 - k];
            int v;
            if (ch >= '0' && ch <= '9')
                v = ch - '0';
            else if (ch >= 'a' && ch <= 'f')
                v = ch - 'a' + 10;
            else if (ch >= 'A' && ch <= 'F')
                v = ch - 'A' + 10;
            else {
                *err = "cpumask '" + mask + "' is not a hexadecimal mask or a [list]";
                return false;
            }
            for (int b = 0; b < 4; ++b)
                if (v & (1 << b)) cores->insert(int(k * 4 + b));
        }
    }
    if (cores->empty()) {
        *err = "cpumask '" + mask + "' names no core";
        return false;
    }
    return true;
}

}  // namespace nocstor
