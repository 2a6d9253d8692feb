// Strict, declarative decoding of JSON-RPC params (SPDK rejects unknown keys, so do we).
//
//   std::string name;
//   std::uint64_t num_blocks = 0;
//   std::uint32_t block_size = 512;
//   std::optional<std::string> uuid;
//   ParamsDecoder d("bdev_malloc_create");
//   d.required("name", &name).required("num_blocks", &num_blocks).range(1, kMax)
//    .optional("block_size", &block_size).range(512, 65536).optional("uuid", &uuid);
//   std::string err;
//   if (!d.decode(params, &err)) return r.error(rpc_error::kInvalidParams, err);
//
// Messages name the parameter: "bdev_malloc_create: 'num_blocks' must be an unsigned integer".
// Absent optional fields leave their output unchanged (or std::nullopt for std::optional).
#pragma once

#include <nlohmann/json.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace nocstor::control {

// JSON types of SPDK parameters accepted as hints.
enum class ParamKind { kBool, kInteger, kUnsigned, kString, kArray, kObject };

template <class T>
concept ParamInteger = std::integral<T> && !std::same_as<T, bool>;

template <class T>
inline constexpr bool kIsParamInteger = ParamInteger<T>;
template <class T>
inline constexpr bool kIsParamInteger<std::optional<T>> = ParamInteger<T>;

class ParamsDecoder {
  public:
    explicit ParamsDecoder(std::string context) : context_(std::move(context)) {}

    // Supported outputs: std::string, bool, any integer type, double, nlohmann::json (any
    // value), std::vector<std::string>, and std::optional of those (optional fields only).
    template <class T>
    ParamsDecoder& required(std::string key, T* out) {
        return add(std::move(key), true, out);
    }
    template <class T>
    ParamsDecoder& optional(std::string key, T* out) {
        return add(std::move(key), false, out);
    }
    // Nested object decoded by its own decoder; messages use "outer.inner" paths.
    ParamsDecoder& required(std::string key, ParamsDecoder nested);
    ParamsDecoder& optional(std::string key, ParamsDecoder nested, bool* present = nullptr);
    // JSON objects / arrays kept as raw JSON.
    ParamsDecoder& required_object(std::string key, nlohmann::json* out);
    ParamsDecoder& optional_object(std::string key, nlohmann::json* out);
    ParamsDecoder& required_array(std::string key, nlohmann::json* out);
    ParamsDecoder& optional_array(std::string key, nlohmann::json* out);

    // SPDK parameters (what SPDK's rpc.py may send; ../shared/spdk has SPDK's schema):
    // A tuning hint with no effect here: accepted (and ignored) when its JSON type is right.
    ParamsDecoder& hint(std::string key, ParamKind kind);
    // A feature nocstor lacks: accepted only with a value that asks for nothing (null, false, 0,
    // "", [] or {}, or one of also_neutral), otherwise refused: "'key' ...: <feature> is not
    // supported".
    ParamsDecoder& unsupported(std::string key, std::string feature,
                               std::vector<nlohmann::json> also_neutral = {});

    // Restricts the integer field added last to [min, max].
    ParamsDecoder& range(std::int64_t min, std::uint64_t max);
    // Allows keys not declared (still type-checks declared ones).
    ParamsDecoder& allow_unknown() {
        allow_unknown_ = true;
        return *this;
    }

    // null params count as an empty object. False with a readable *error on the first problem.
    bool decode(const nlohmann::json& params, std::string* error) const;

  private:
    struct Field;
    // Assigns the value or returns false with *problem ("must be a string", ...).
    using Assign = std::function<bool(const nlohmann::json&, const Field&, std::string* problem)>;
    using Absent = std::function<void()>;
    struct Field {
        std::string key;
        bool required = false;
        Assign assign;
        Absent on_absent;  // for optional fields: reset std::optional outputs
        bool is_integer = false;
        bool has_range = false;
        std::int64_t min = 0;
        std::uint64_t max = 0;
    };

    static bool assign_integer(const nlohmann::json& v, const Field& f, bool is_unsigned,
                               std::int64_t type_min, std::uint64_t type_max, std::int64_t* s,
                               std::uint64_t* u, std::string* problem);
    static bool assign_value(const nlohmann::json& v, const Field& f, std::string* out,
                             std::string* problem);
    static bool assign_value(const nlohmann::json& v, const Field& f, bool* out,
                             std::string* problem);
    static bool assign_value(const nlohmann::json& v, const Field& f, double* out,
                             std::string* problem);
    static bool assign_value(const nlohmann::json& v, const Field& f, nlohmann::json* out,
                             std::string* problem);
    static bool assign_value(const nlohmann::json& v, const Field& f, std::vector<std::string>* out,
                             std::string* problem);
    template <ParamInteger T>
    static bool assign_value(const nlohmann::json& v, const Field& f, T* out,
                             std::string* problem) {
        std::int64_t s = 0;
        std::uint64_t u = 0;
        constexpr bool is_unsigned = std::is_unsigned_v<T>;
        if (!assign_integer(
                v, f, is_unsigned, static_cast<std::int64_t>(std::numeric_limits<T>::min()),
                static_cast<std::uint64_t>(std::numeric_limits<T>::max()), &s, &u, problem)) {
            return false;
        }
        *out = is_unsigned ? static_cast<T>(u) : static_cast<T>(s);
        return true;
    }
    template <class T>
    static bool assign_value(const nlohmann::json& v, const Field& f, std::optional<T>* out,
                             std::string* problem) {
        T value{};
        if (!assign_value(v, f, &value, problem)) return false;
        *out = std::move(value);
        return true;
    }

    template <class T>
    ParamsDecoder& add(std::string key, bool required, T* out) {
        Field f;
        f.key = std::move(key);
        f.required = required;
        f.is_integer = kIsParamInteger<T>;
        f.assign = [out](const nlohmann::json& v, const Field& field, std::string* problem) {
            return assign_value(v, field, out, problem);
        };
        if constexpr (requires { out->reset(); }) {
            if constexpr (!std::same_as<T, nlohmann::json>) f.on_absent = [out] { out->reset(); };
        }
        fields_.push_back(std::move(f));
        return *this;
    }
    ParamsDecoder& add_nested(std::string key, bool required, ParamsDecoder nested, bool* present);
    ParamsDecoder& add_kind(std::string key, bool required, nlohmann::json* out, bool object);
    bool decode_at(const nlohmann::json& params, const std::string& prefix,
                   std::string* error) const;

    std::string context_;
    std::vector<Field> fields_;
    bool allow_unknown_ = false;
};

}  // namespace nocstor::control
