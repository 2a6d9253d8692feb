#include "control/json_params.h"

#include <fmt/format.h>

#include <algorithm>

namespace nocstor::control {

using nlohmann::json;

ParamsDecoder& ParamsDecoder::required(std::string key, ParamsDecoder nested) {
    return add_nested(std::move(key), true, std::move(nested), nullptr);
}

ParamsDecoder& ParamsDecoder::optional(std::string key, ParamsDecoder nested, bool* present) {
    return add_nested(std::move(key), false, std::move(nested), present);
}

ParamsDecoder& ParamsDecoder::required_object(std::string key, json* out) {
    return add_kind(std::move(key), true, out, true);
}
ParamsDecoder& ParamsDecoder::optional_object(std::string key, json* out) {
    return add_kind(std::move(key), false, out, true);
}
ParamsDecoder& ParamsDecoder::required_array(std::string key, json* out) {
    return add_kind(std::move(key), true, out, false);
}
ParamsDecoder& ParamsDecoder::optional_array(std::string key, json* out) {
    return add_kind(std::move(key), false, out, false);
}

ParamsDecoder& ParamsDecoder::hint(std::string key, ParamKind kind) {
    Field f;
    f.key = std::move(key);
    f.assign = [kind](const json& v, const Field&, std::string* problem) {
        if (v.is_null()) return true;
        bool ok = false;
        const char* what = "";
        switch (kind) {
            case ParamKind::kBool:
                ok = v.is_boolean(), what = "a boolean";
                break;
            case ParamKind::kInteger:
                ok = v.is_number_integer(), what = "an integer";
                break;
            case ParamKind::kUnsigned:
                ok =
                    v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
                what = "an unsigned integer";
                break;
            case ParamKind::kString:
                ok = v.is_string(), what = "a string";
                break;
            case ParamKind::kArray:
                ok = v.is_array(), what = "an array";
                break;
            case ParamKind::kObject:
                ok = v.is_object(), what = "an object";
                break;
        }
        if (!ok) *problem = fmt::format("must be {}", what);
        return ok;
    };
    fields_.push_back(std::move(f));
    return *this;
}

ParamsDecoder& ParamsDecoder::unsupported(std::string key, std::string feature,
                                          std::vector<json> also_neutral) {
    Field f;
    f.key = std::move(key);
    f.assign = [feature = std::move(feature), also = std::move(also_neutral)](
                   const json& v, const Field&, std::string* problem) {
        const bool neutral = v.is_null() || (v.is_boolean() && !v.get<bool>()) ||
                             (v.is_number() && v == 0) ||
                             (v.is_string() && v.get_ref<const std::string&>().empty()) ||
                             (v.is_array() && v.empty()) || (v.is_object() && v.empty());
        if (neutral || std::find(also.begin(), also.end(), v) != also.end()) return true;
        *problem = fmt::format("= {}: {} is not supported", v.dump(), feature);
        return false;
    };
    fields_.push_back(std::move(f));
    return *this;
}

ParamsDecoder& ParamsDecoder::range(std::int64_t min, std::uint64_t max) {
    if (!fields_.empty() && fields_.back().is_integer) {
        fields_.back().has_range = true;
        fields_.back().min = min;
        fields_.back().max = max;
    }
    return *this;
}

ParamsDecoder& ParamsDecoder::add_kind(std::string key, bool required, json* out, bool object) {
    Field f;
    f.key = std::move(key);
    f.required = required;
    f.assign = [out, object](const json& v, const Field&, std::string* problem) {
        if (object ? !v.is_object() : !v.is_array()) {
            *problem = object ? "must be an object" : "must be an array";
            return false;
        }
        *out = v;
        return true;
    };
    fields_.push_back(std::move(f));
    return *this;
}

ParamsDecoder& ParamsDecoder::add_nested(std::string key, bool required, ParamsDecoder nested,
                                         bool* present) {
    Field f;
    f.key = std::move(key);
    f.required = required;
    // The nested decoder reports its own full message; it is passed through as the problem
    // with a marker so decode_at() does not prefix it again.
    f.assign = [nested = std::move(nested), present](const json& v, const Field& field,
                                                     std::string* problem) {
        if (!v.is_object()) {
            *problem = "must be an object";
            return false;
        }
        std::string error;
        if (!nested.decode_at(v, field.key + ".", &error)) {
            *problem = "\n" + error;
            return false;
        }
        if (present) *present = true;
        return true;
    };
    if (present) {
        *present = false;
        f.on_absent = [present] { *present = false; };
    }
    fields_.push_back(std::move(f));
    return *this;
}

bool ParamsDecoder::decode(const json& params, std::string* error) const {
    std::string inner;
    if (decode_at(params, "", &inner)) return true;
    *error = context_.empty() ? inner : fmt::format("{}: {}", context_, inner);
    return false;
}

bool ParamsDecoder::decode_at(const json& params, const std::string& prefix,
                              std::string* error) const {
    static const json kEmpty = json::object();
    const json& obj = params.is_null() ? kEmpty : params;
    if (!obj.is_object()) {
        *error = prefix.empty()
                     ? "params must be an object"
                     : fmt::format("'{}' must be an object", prefix.substr(0, prefix.size() - 1));
        return false;
    }
    if (!allow_unknown_) {
        for (const auto& item : obj.items()) {
            bool known = false;
            for (const Field& f : fields_) known = known || f.key == item.key();
            if (!known) {
                *error = fmt::format("unknown parameter '{}{}'", prefix, item.key());
                return false;
            }
        }
    }
    for (const Field& f : fields_) {
        auto it = obj.find(f.key);
        if (it == obj.end()) {
            if (f.required) {
                *error = fmt::format("missing required parameter '{}{}'", prefix, f.key);
                return false;
            }
            if (f.on_absent) f.on_absent();
            continue;
        }
        std::string problem;
        if (!f.assign(*it, f, &problem)) {
            if (!problem.empty() && problem[0] == '\n') {
                *error = problem.substr(1);  // already complete (nested decoder)
            } else {
                *error = fmt::format("'{}{}' {}", prefix, f.key, problem);
            }
            return false;
        }
    }
    return true;
}

bool ParamsDecoder::assign_integer(const json& v, const Field& f, bool is_unsigned,
                                   std::int64_t type_min, std::uint64_t type_max, std::int64_t* s,
                                   std::uint64_t* u, std::string* problem) {
    const std::int64_t lo = f.has_range ? std::max(f.min, type_min) : type_min;
    const std::uint64_t hi = f.has_range ? std::min(f.max, type_max) : type_max;
    const char* kind = is_unsigned ? "an unsigned integer" : "an integer";
    auto out_of_range = [&] {
        *problem = fmt::format("must be {} between {} and {}", kind, lo, hi);
        return false;
    };
    // Parsed text stores non-negative integers as unsigned, but json built in C++ from an int
    // literal is signed: classify by value, not by storage.
    const bool non_negative =
        v.is_number_unsigned() || (v.is_number_integer() && v.get<std::int64_t>() >= 0);
    if (non_negative) {
        const std::uint64_t value = v.is_number_unsigned()
                                        ? v.get<std::uint64_t>()
                                        : static_cast<std::uint64_t>(v.get<std::int64_t>());
        if (value > hi || (lo > 0 && value < static_cast<std::uint64_t>(lo))) {
            return out_of_range();
        }
        *u = value;
        *s = static_cast<std::int64_t>(value);
        return true;
    }
    if (v.is_number_integer()) {  // negative
        const std::int64_t value = v.get<std::int64_t>();
        if (is_unsigned && !f.has_range) {
            *problem = fmt::format("must be {}", kind);
            return false;
        }
        if (value < lo) return out_of_range();
        *s = value;
        *u = static_cast<std::uint64_t>(value);
        return true;
    }
    *problem = fmt::format("must be {}", kind);
    return false;
}

bool ParamsDecoder::assign_value(const json& v, const Field&, std::string* out,
                                 std::string* problem) {
    if (!v.is_string()) {
        *problem = "must be a string";
        return false;
    }
    *out = v.get<std::string>();
    return true;
}

bool ParamsDecoder::assign_value(const json& v, const Field&, bool* out, std::string* problem) {
    if (!v.is_boolean()) {
        *problem = "must be a boolean";
        return false;
    }
    *out = v.get<bool>();
    return true;
}

bool ParamsDecoder::assign_value(const json& v, const Field&, double* out, std::string* problem) {
    if (!v.is_number()) {
        *problem = "must be a number";
        return false;
    }
    *out = v.get<double>();
    return true;
}

bool ParamsDecoder::assign_value(const json& v, const Field&, json* out, std::string*) {
    *out = v;
    return true;
}

bool ParamsDecoder::assign_value(const json& v, const Field&, std::vector<std::string>* out,
                                 std::string* problem) {
    if (!v.is_array()) {
        *problem = "must be an array of strings";
        return false;
    }
    std::vector<std::string> values;
    for (const json& e : v) {
        if (!e.is_string()) {
            *problem = "must be an array of strings";
            return false;
        }
        values.push_back(e.get<std::string>());
    }
    *out = std::move(values);
    return true;
}

}  // namespace nocstor::control
