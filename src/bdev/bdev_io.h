// One block I/O as it travels down a bdev stack. Preallocated per thread (see bdev_pool.h), never
// heap-allocated on the data path; completion runs on the thread that submitted it.
#pragma once

#include <sys/uio.h>

#include <cstdint>

namespace nocstor {

class Bdev;
class BdevChannel;
class IoChannel;
struct BdevIo;

enum class IoType : uint8_t { Read, Write, Flush, Unmap, WriteZeroes, Reset, Count };
const char* io_type_name(IoType t);

// Outcome of an I/O, rich enough to map onto NVMe status codes.
enum class IoStatus : uint8_t {
    Pending = 0,
    Success,
    Failed,        // generic: internal error
    NoMemory,      // module had no resources: the bdev layer queues and retries it
    Aborted,       // reset, hot-remove or shutdown
    InvalidRange,  // LBA out of range
    Unsupported,   // I/O type not supported by the device
    MediaError,    // unrecovered read error / write fault
    NvmeError,     // carries the backend's own NVMe status (sct/sc), e.g. from a remote target
    Timeout,
};
const char* io_status_name(IoStatus s);

using BdevIoCompletion = void (*)(BdevIo* io, bool success, void* cb_arg);

struct BdevIo {
    static constexpr int kInlineIovs = 16;
    static constexpr size_t kDriverCtxSize = 192;

    // What to do.
    Bdev* bdev = nullptr;
    IoType type = IoType::Read;
    uint64_t offset_blocks = 0;
    uint64_t num_blocks = 0;
    iovec* iovs = nullptr;  // caller's array, or inline_iovs for split children
    int iovcnt = 0;
    bool fua = false;

    // Result.
    IoStatus status = IoStatus::Pending;
    uint8_t nvme_sct = 0;
    uint8_t nvme_sc = 0;

    // Caller's completion.
    BdevIoCompletion cb = nullptr;
    void* cb_arg = nullptr;

    // Bdev-layer internals.
    BdevChannel* channel = nullptr;  // the bdev layer's per-thread channel
    IoChannel* module_channel = nullptr;
    // LatClock ticks when the I/O was submitted; an I/O submitted from inside another's
    // submission (a vbdev's member I/O) takes its parent's, and split children their parent's.
    uint64_t submit_tick = 0;
    BdevIo* parent = nullptr;  // split child -> parent
    uint32_t children_outstanding = 0;
    uint64_t split_next_block = 0;  // parent: next block to hand to a child
    IoStatus split_status = IoStatus::Success;
    bool in_submit = false;
    bool queued_nomem = false;
    // bdev_forward_io: the levels this I/O was passed down from, innermost last.
    struct ForwardFrame {
        BdevChannel* channel;
        uint64_t offset_blocks;
        BdevIo* parent;
        BdevIoCompletion done;
        void* done_arg;
    };
    static constexpr int kMaxForwardDepth = 3;
    uint8_t forward_depth = 0;
    ForwardFrame forward[kMaxForwardDepth];
    BdevIo* next = nullptr;  // intrusive link (pool free list, retry queue)
    iovec inline_iovs[kInlineIovs];

    // Scratch space for the module that executes it (each vbdev level gets its own BdevIo).
    alignas(16) unsigned char driver_ctx[kDriverCtxSize];
    template <typename T>
    T* ctx() {
        static_assert(sizeof(T) <= kDriverCtxSize, "driver context too large");
        return reinterpret_cast<T*>(driver_ctx);
    }

    uint64_t length_bytes() const;
};

// Intrusive FIFO of BdevIo (no allocation).
struct BdevIoQueue {
    BdevIo* head = nullptr;
    BdevIo* tail = nullptr;
    size_t size = 0;
    void push(BdevIo* io) {
        io->next = nullptr;
        if (tail)
            tail->next = io;
        else
            head = io;
        tail = io;
        ++size;
    }
    BdevIo* pop() {
        BdevIo* io = head;
        if (!io) return nullptr;
        head = io->next;
        if (!head) tail = nullptr;
        io->next = nullptr;
        --size;
        return io;
    }
    bool empty() const { return head == nullptr; }
};

}  // namespace nocstor
