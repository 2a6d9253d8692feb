// iSCSI text keys (RFC 7143 section 6): "key=value" pairs separated by NUL bytes, as Login and
// Text PDUs carry them. Parsing keeps the order and rejects what the RFC forbids (no '=', empty
// or over-long keys, values over 8192 bytes, the same key twice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nocstor::iscsi_tgt {

class TextParams {
  public:
    // false with *err on malformed text. A trailing NUL is optional; a missing one after the
    // last pair is tolerated (some initiators pad with NULs instead).
    bool parse(const uint8_t* data, size_t len, std::string* err);

    std::optional<std::string_view> get(std::string_view key) const;
    bool has(std::string_view key) const { return get(key).has_value(); }
    const std::vector<std::pair<std::string, std::string>>& pairs() const { return pairs_; }
    void add(std::string key, std::string value) {
        pairs_.emplace_back(std::move(key), std::move(value));
    }
    bool empty() const { return pairs_.empty(); }
    void clear() { pairs_.clear(); }
    // "k=v\0k=v\0".
    std::string serialize() const;

  private:
    std::vector<std::pair<std::string, std::string>> pairs_;
};

// Numbers as RFC 7143 writes them: decimal, 0x hex; false when out of [lo, hi] or malformed.
bool parse_number(std::string_view s, uint64_t lo, uint64_t hi, uint64_t* out);
// Binary values: 0x<hex> or 0b<base64>.
bool decode_binary(std::string_view s, std::vector<uint8_t>* out);
std::string encode_hex(const uint8_t* data, size_t len);

}  // namespace nocstor::iscsi_tgt
