#include "control/jsonrpc_framer.h"

namespace nocstor::control {

namespace {

bool is_json_whitespace(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

}  // namespace

JsonStreamFramer::JsonStreamFramer(std::size_t max_value_size, std::size_t max_depth)
    : max_value_size_(max_value_size), max_depth_(max_depth) {}

void JsonStreamFramer::append(std::string_view bytes) {
    if (failed_ != Status::kNeedMore) return;
    compact();
    buffer_.append(bytes);
}

void JsonStreamFramer::compact() {
    // Drop returned bytes once they dominate the buffer, keeping erase cost amortised.
    if (consumed_ == 0 || consumed_ < buffer_.size() / 2) return;
    buffer_.erase(0, consumed_);
    scan_pos_ -= consumed_;
    value_start_ = in_value_ ? value_start_ - consumed_ : 0;
    consumed_ = 0;
}

JsonStreamFramer::Status JsonStreamFramer::next(std::string* out) {
    if (failed_ != Status::kNeedMore) return failed_;
    const std::size_t size = buffer_.size();
    while (scan_pos_ < size) {
        const char c = buffer_[scan_pos_];
        if (!in_value_) {
            if (is_json_whitespace(c)) {
                consumed_ = ++scan_pos_;
                continue;
            }
            if (c != '{' && c != '[') return failed_ = Status::kError;
            in_value_ = true;
            value_start_ = scan_pos_;
            depth_ = 1;
            ++scan_pos_;
            continue;
        }
        ++scan_pos_;
        if (in_string_) {
            if (escape_) {
                escape_ = false;
            } else if (c == '\\') {
                escape_ = true;
            } else if (c == '"') {
                in_string_ = false;
            }
            continue;
        }
        if (c == '"') {
            in_string_ = true;
        } else if (c == '{' || c == '[') {
            if (++depth_ > max_depth_) return failed_ = Status::kError;
        } else if (c == '}' || c == ']') {
            // Mismatched pairs such as "{]" are left for the JSON parser to reject.
            if (--depth_ == 0) {
                if (scan_pos_ - value_start_ > max_value_size_) return failed_ = Status::kTooLarge;
                out->assign(buffer_, value_start_, scan_pos_ - value_start_);
                in_value_ = false;
                consumed_ = scan_pos_;
                return Status::kValue;
            }
        }
    }
    if (in_value_ && scan_pos_ - value_start_ > max_value_size_) return failed_ = Status::kTooLarge;
    if (!in_value_ && buffered() > max_value_size_) return failed_ = Status::kTooLarge;
    return Status::kNeedMore;
}

}  // namespace nocstor::control
