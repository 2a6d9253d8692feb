// Incremental framing of a byte stream into complete top-level JSON values.
//
// SPDK's rpc.py writes one JSON object per request with no delimiter and may send several
// requests on one connection, so values are delimited by counting braces and brackets outside
// of strings (honouring backslash escapes). Only objects and arrays are accepted at the top
// level: a bare scalar cannot be delimited in a stream. Scanning is incremental, so feeding a
// large request one byte at a time stays linear.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace nocstor::control {

class JsonStreamFramer {
  public:
    enum class Status {
        kNeedMore,  // no complete value buffered yet
        kValue,     // *out holds the text of one complete top-level value
        kError,     // the stream is not a sequence of JSON objects/arrays (or nests too deep)
        kTooLarge,  // the value being received exceeds max_value_size
    };

    explicit JsonStreamFramer(std::size_t max_value_size = 16 * 1024 * 1024,
                              std::size_t max_depth = 256);

    void append(std::string_view bytes);

    // Extracts the next complete value. kError and kTooLarge are sticky.
    Status next(std::string* out);

    // Bytes buffered but not yet returned as a value.
    std::size_t buffered() const { return buffer_.size() - consumed_; }
    // True when a value has started but is incomplete (a disconnect now loses a request).
    bool in_value() const { return in_value_; }

  private:
    void compact();

    std::string buffer_;
    std::size_t consumed_ = 0;     // bytes before this offset were already returned
    std::size_t scan_pos_ = 0;     // next byte to examine
    std::size_t value_start_ = 0;  // start of the value being scanned (valid when in_value_)
    std::size_t depth_ = 0;
    bool in_value_ = false;
    bool in_string_ = false;
    bool escape_ = false;
    Status failed_ = Status::kNeedMore;  // kError/kTooLarge once the stream is broken
    std::size_t max_value_size_;
    std::size_t max_depth_;
};

}  // namespace nocstor::control
