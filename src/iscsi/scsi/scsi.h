// The SCSI block command set (SPC-4 / SBC-3 subset) over any bdev, independent of the transport:
// plan() decodes a CDB into a data direction and length (or a CHECK CONDITION), execute() runs
// it with the data in place and calls the task's done, now or after bdev I/O. Used by the iSCSI
// target; nothing here knows about PDUs.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bdev/bdev.h"
#include "runtime/buffer_pool.h"

namespace nocstor::scsi {

enum Status : uint8_t {
    kGood = 0x00,
    kCheckCondition = 0x02,
    kConditionMet = 0x04,
    kBusy = 0x08,
    kReservationConflict = 0x18,
    kTaskSetFull = 0x28,
    kTaskAborted = 0x40,
};

enum SenseKey : uint8_t {
    kNoSense = 0x0,
    kNotReady = 0x2,
    kMediumError = 0x3,
    kHardwareError = 0x4,
    kIllegalRequest = 0x5,
    kUnitAttention = 0x6,
    kDataProtect = 0x7,
    kAbortedCommand = 0xb,
    kMiscompare = 0xe,
};

// Additional sense code and qualifier, as one 16-bit value.
enum Asc : uint16_t {
    kAscNone = 0x0000,
    kAscWriteError = 0x0c00,
    kAscUnrecoveredReadError = 0x1100,
    kAscParameterListLengthError = 0x1a00,
    kAscMiscompareDuringVerify = 0x1d00,
    kAscInvalidOpcode = 0x2000,
    kAscLbaOutOfRange = 0x2100,
    kAscInvalidFieldInCdb = 0x2400,
    kAscLunNotSupported = 0x2500,
    kAscInvalidFieldInParamList = 0x2600,
    kAscWriteProtected = 0x2700,
    kAscPowerOnReset = 0x2900,
    kAscModeParametersChanged = 0x2a01,
    kAscCapacityDataChanged = 0x2a09,
    kAscSavingParamsNotSupported = 0x3900,
    kAscReportedLunsDataChanged = 0x3f0e,
    kAscInternalTargetFailure = 0x4400,
    kAscInvalidReleaseOfPr = 0x2604,
    kAscInsufficientRegistrationResources = 0x5504,
};

struct PrState;  // persistent reservations: the control thread's model
                 // (persistent_reservations.cpp)

// What the sessions of all poll groups share about a LUN: its SPC-2 reservation (RESERVE(6)) and
// its persistent reservation. Every command checks them with a few atomic loads; RESERVE(6)
// takes its reservation with a compare-exchange; persistent reservations change only on the
// control thread (PERSISTENT RESERVE OUT goes there by message), which mirrors the registrants
// and the holder into the atomics below.
struct LunShared {
    static constexpr int kMaxRegistrants = 64;
    std::atomic<uint64_t> reserved_by{0};  // SPC-2: nexus id, 0 = none
    std::atomic<uint8_t> pr_type{0};       // persistent reservation type, 0 = none
    std::atomic<uint64_t> pr_holder{0};    // its holder's nexus (all registrants for *AR types)
    std::atomic<uint64_t> pr_registrants[kMaxRegistrants]{};  // nexus ids, 0 = free slot
    std::unique_ptr<PrState> pr;                              // control thread only
    LunShared();
    ~LunShared();
};

// A bdev as a logical unit: immutable once published; the last reference closes the
// descriptor on the control thread (desc_guard).
struct Lun {
    uint32_t id = 0;
    std::string bdev_name;
    BdevDesc* desc = nullptr;
    std::shared_ptr<const void> desc_guard;
    Uuid uuid{};
    uint32_t block_size = 512;
    uint64_t num_blocks = 0;
    // Advertised (VPD B0) and enforced for reads and writes, which larger than 1 MiB move chunk
    // by chunk; commands that need all their data at once (VERIFY) stop at 1 MiB.
    uint32_t max_transfer_bytes = 64 * 1024 * 1024;
    bool unmap = false;
    bool write_zeroes = false;
    bool flush = false;
    bool write_cache = false;
    bool read_only = false;
    std::shared_ptr<LunShared> shared = std::make_shared<LunShared>();
};

using LunTable = std::vector<std::shared_ptr<const Lun>>;  // ascending id

enum class DataDir : uint8_t { None, In, Out };

struct Task;
using TaskDone = void (*)(Task* t, void* arg);

struct Task {
    static constexpr int kMaxIov = 10;
    // --- set by the transport before plan() ---
    uint8_t cdb[16]{};
    uint32_t lun_id = 0;
    uint64_t nexus = 0;                           // the I_T nexus (session) issuing it, never 0
    const std::string* initiator_port = nullptr;  // "iqn...,i,0x<ISID>" (transport IDs)
    const Lun* lun = nullptr;                     // null: no such LUN
    const LunTable* luns = nullptr;               // the target's LUNs (REPORT LUNS)
    IoChannel* ch = nullptr;
    BufferCache* buffers = nullptr;  // scratch buffers (VERIFY, COMPARE AND WRITE, WRITE SAME)
    TaskDone done = nullptr;
    void* done_arg = nullptr;

    // --- from plan() ---
    DataDir dir = DataDir::None;
    uint32_t xfer_len = 0;  // bytes the CDB moves (data-in: at most this many)

    // --- data, set by the transport before execute() ---
    iovec iov[kMaxIov]{};
    int iovcnt = 0;
    uint32_t data_len = 0;  // data-out bytes present / data-in capacity

    // --- results ---
    uint8_t status = kGood;
    uint8_t sense_len = 0;
    uint8_t sense[18]{};
    uint32_t data_in_len = 0;  // data-in bytes produced

    // --- execution state (scsi internals) ---
    uint64_t lba = 0;
    uint32_t nblocks = 0;
    uint32_t pending = 0;
    uint32_t step = 0;
    bool failed = false;
    Buffer scratch{};
    BdevIoWaitEntry io_wait{};
    int (*resubmit)(Task* t) = nullptr;

    void reset_results() {
        status = kGood;
        sense_len = 0;
        data_in_len = 0;
        pending = step = 0;
        failed = false;
    }
    void check_condition(SenseKey key, uint16_t asc);
};

// Decodes t.cdb: t.dir / t.xfer_len, or a CHECK CONDITION in t (then t.dir is None and the
// command must be answered without executing it).
void plan(Task& t);
// After plan(): RESERVATION CONFLICT when another nexus holds the LUN's RESERVE(6) and the
// command is not one SPC-2 lets through.
void check_reservation(Task& t);
// After plan(): a pending unit attention (*pending, an ASC/ASCQ, 0 = none) answers this
// command unless it is one of the three SPC lets through; REPORT LUNS clears REPORTED LUNS DATA
// HAS CHANGED.
void check_unit_attention(Task& t, uint16_t* pending);
// A session ended or the LUN was reset: its RESERVE(6) is released.
void release_reservation(const Lun& lun, uint64_t nexus);
void reset_reservation(const Lun& lun);
// WRITE(6/10/12/16) and WRITE AND VERIFY(10/12/16); READ(6/10/12/16).
bool is_plain_write(uint8_t opcode);
bool is_plain_read(uint8_t opcode);

// Runs the planned command; t.done(t) when finished (possibly before execute returns).
void execute(Task& t);

// Bytes of fixed-format sense data for a key and ASC/ASCQ (18 bytes).
void fill_sense(uint8_t* out, SenseKey key, uint16_t asc);

// Copies `len` bytes from `src` into the iovecs (at most their capacity); returns bytes copied.
uint32_t copy_to_iov(const iovec* iov, int iovcnt, const uint8_t* src, uint32_t len);
uint32_t copy_from_iov(uint8_t* dst, const iovec* iov, int iovcnt, uint32_t off, uint32_t len);

}  // namespace nocstor::scsi
