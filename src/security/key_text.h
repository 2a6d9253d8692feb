// The text form shared by NVMe secrets ("DHHC-1:hh:<base64>:", "NVMeTLSkey-1:hh:<base64>:"):
// base64 of the key followed by its CRC-32 (gzip's, little-endian). CRC-32 from ISA-L.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nocstor::security {

// Splits "<prefix>hh:<base64>:" (trailing newlines and blanks ignored) into hh and the
// base64; false with *why ("not a <what>: it must start with <prefix>", "malformed <what>: want
// <prefix>hh:<base64>:").
bool split_key_text(std::string_view text, std::string_view prefix, std::string_view what,
                    std::string_view* hh, std::string_view* b64, std::string* why);

// Decodes base64(key || le32 crc32) into *key; false with *why ("the base64 part has a wrong
// length", "... does not decode", "CRC mismatch (mistyped or truncated)") and *key empty.
bool decode_key_with_crc(std::string_view b64, std::vector<uint8_t>* key, std::string* why);
std::string encode_key_with_crc(std::span<const uint8_t> key);

}  // namespace nocstor::security
