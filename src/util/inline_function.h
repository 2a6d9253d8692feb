// A move-only callable stored inline in a fixed buffer: messages and completions travel through
// lock-free rings without touching the heap. A capture that does not fit is a compile error,
// which keeps allocation off the data path by construction.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace nocstor {

template <typename Signature, size_t Capacity = 48>
class InlineFunction;

template <typename R, typename... Args, size_t Capacity>
class InlineFunction<R(Args...), Capacity> {
  public:
    InlineFunction() noexcept = default;
    InlineFunction(std::nullptr_t) noexcept {}

    template <typename F, typename D = std::decay_t<F>,
              typename = std::enable_if_t<!std::is_same_v<D, InlineFunction>>>
    InlineFunction(F&& f) {  // NOLINT: implicit like std::function
        static_assert(sizeof(D) <= Capacity, "capture too large for InlineFunction");
        static_assert(alignof(D) <= alignof(std::max_align_t), "over-aligned capture");
        static_assert(std::is_nothrow_move_constructible_v<D>, "capture must be nothrow-movable");
        new (storage_) D(std::forward<F>(f));
        ops_ = &ops_for<D>;
    }

    InlineFunction(InlineFunction&& other) noexcept { move_from(other); }
    InlineFunction& operator=(InlineFunction&& other) noexcept {
        if (this != &other) {
            reset();
            move_from(other);
        }
        return *this;
    }
    InlineFunction(const InlineFunction&) = delete;
    InlineFunction& operator=(const InlineFunction&) = delete;
    ~InlineFunction() { reset(); }

    explicit operator bool() const noexcept { return ops_ != nullptr; }

    R operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

    void reset() noexcept {
        if (ops_) {
            ops_->destroy(storage_);
            ops_ = nullptr;
        }
    }

  private:
    struct Ops {
        R (*invoke)(void*, Args&&...);
        void (*move)(void* dst, void* src) noexcept;
        void (*destroy)(void*) noexcept;
    };
    template <typename D>
    static constexpr Ops ops_for = {
        [](void* p, Args&&... args) -> R {
            return (*static_cast<D*>(p))(std::forward<Args>(args)...);
        },
        [](void* dst, void* src) noexcept {
            new (dst) D(std::move(*static_cast<D*>(src)));
            static_cast<D*>(src)->~D();
        },
        [](void* p) noexcept { static_cast<D*>(p)->~D(); },
    };

    void move_from(InlineFunction& other) noexcept {
        if (other.ops_) {
            other.ops_->move(storage_, other.storage_);
            ops_ = other.ops_;
            other.ops_ = nullptr;
        }
    }

    alignas(std::max_align_t) unsigned char storage_[Capacity];
    const Ops* ops_ = nullptr;
};

}  // namespace nocstor
