// The lvstore's on-disk format, version 1 (docs/lvol.md has the byte layout). Pure encode/decode:
// used by the daemon, by recovery and by the offline checker (nocstor-lvs-check).
//
//   [0, page)              superblock copy A  } written alternately (seq even: A, odd: B); the
//   [page, 2 page)         superblock copy B  } valid copy with the highest seq counts
//   [ckpt_offset, +ckpt_bytes)      checkpoint slot 0  } the whole metadata state, alternately;
//   [.. + ckpt_bytes, +ckpt_bytes)  checkpoint slot 1  } the valid one with the highest seq counts
//   [journal_offset, +journal_bytes) metadata journal: a ring of batches of operations
//   [data_offset, ...)     clusters
//
// A metadata change is one operation (create, allocate, snapshot, resize, delete...). It is
// durable once the journal batch that carries it is on disk (written with FUA after a flush of
// the base, so that data the operation depends on, e.g. a zero-filled cluster, is there first).
// Loading reads the newest checkpoint and replays the batches after it: bounded by the journal's
// size, never by the store's. Little-endian; CRC32C (ISA-L) over every header and payload.
#pragma once

#include "bdev/bdev.h"
#include "util/crc32c.h"

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::lvol {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr char kSbMagic[8] = {'N', 'O', 'C', 'L', 'V', 'S', '0', '1'};
inline constexpr char kCkptMagic[8] = {'N', 'O', 'C', 'L', 'V', 'C', 'K', '1'};
inline constexpr char kBatchMagic[8] = {'N', 'O', 'C', 'L', 'V', 'J', 'B', '1'};
inline constexpr uint32_t kNoLvol = 0xFFFFFFFFu;       // "no parent"
inline constexpr uint32_t kUnallocated = 0xFFFFFFFFu;  // cluster map entry
inline constexpr size_t kMaxNameBytes = 63;
inline constexpr uint64_t kDefaultClusterBytes = 4ull << 20;
inline constexpr size_t kSbBytes = 512;  // used part of the superblock page
inline constexpr size_t kCkptHeaderBytes = 128;
inline constexpr size_t kBatchHeaderBytes = 64;

enum class ClearMethod : uint8_t { None = 0, Unmap = 1, WriteZeroes = 2 };
const char* clear_method_name(ClearMethod m);
bool clear_method_parse(const std::string& s, ClearMethod* out);

struct Superblock {
    uint64_t seq = 0;
    bool clean = false;  // stopped cleanly: nothing to replay
    Uuid uuid{};
    std::string name;
    uint32_t block_size = 0;
    uint64_t page_bytes = 0;  // metadata I/O unit: max(4 KiB, block size)
    uint64_t cluster_bytes = 0;
    uint64_t total_clusters = 0;  // clusters in use by the store (grows with the base)
    uint64_t max_clusters = 0;    // what the checkpoint slots were sized for
    uint64_t data_offset = 0;     // bytes
    uint64_t ckpt_offset = 0;     // bytes, slot 0; slot 1 follows
    uint64_t ckpt_bytes = 0;      // per slot
    uint64_t journal_offset = 0;  // bytes
    uint64_t journal_bytes = 0;
    uint64_t base_bytes = 0;  // the base's size when the store was created or last grown
};

// The layout of a new store on a base of `base_bytes` with `block_size` blocks. False with a
// reason when it does not fit (the base must hold the metadata and at least one cluster).
bool layout_new(uint64_t base_bytes, uint32_t block_size, uint64_t cluster_bytes, Superblock* sb,
                std::string* why);
// Clusters of `cluster_bytes` a base of `base_bytes` holds after the metadata.
uint64_t clusters_for(const Superblock& sb, uint64_t base_bytes);

void sb_encode(const Superblock& sb, uint8_t* out);  // kSbBytes
bool sb_decode(const uint8_t* in, Superblock* out, std::string* why);
bool sb_has_magic(const uint8_t* in);

// A run of clusters: lvol clusters [lidx, lidx + count) live in base clusters [pcl, pcl + count).
struct Run {
    uint64_t lidx = 0;
    uint32_t pcl = 0;
    uint32_t count = 0;
};

// One lvol as the metadata knows it.
struct LvolMeta {
    uint32_t id = 0;
    Uuid uuid{};
    std::string name;
    uint64_t num_clusters = 0;
    bool thin = false;
    bool read_only = false;
    bool snapshot = false;      // made by bdev_lvol_snapshot
    uint32_t parent = kNoLvol;  // a snapshot of this store
    std::string esnap;          // or an external bdev (clone of a bdev)
    ClearMethod clear_method = ClearMethod::Unmap;
    std::vector<uint32_t> map;  // num_clusters entries: base cluster or kUnallocated

    uint64_t allocated() const;
    std::vector<Run> runs() const;  // the allocated entries, coalesced
};

enum class OpType : uint8_t {
    CreateLvol = 1,     // lvol (its runs: a thick lvol's clusters)
    DeleteLvol = 2,     // id
    AllocRuns = 3,      // id, runs
    Resize = 4,         // id, num (clusters), runs (a thick lvol's new clusters)
    Snapshot = 5,       // id = origin, lvol = the new snapshot (id, uuid, name)
    Rename = 6,         // id, name
    SetReadOnly = 7,    // id
    SetParent = 8,      // id, other = new parent (kNoLvol: none), name = new esnap ("" none)
    MergeSnapshot = 9,  // id = snapshot, other = its only child
};
const char* op_type_name(OpType t);

struct Op {
    OpType type = OpType::CreateLvol;
    uint32_t id = 0;
    uint32_t other = kNoLvol;
    uint64_t num = 0;
    std::string name;
    std::vector<Run> runs;
    LvolMeta lvol;  // CreateLvol, Snapshot
};

// Appends the encoding of `op` to `out`.
void op_encode(const Op& op, std::vector<uint8_t>* out);
// Decodes one op at *pos of [p, p + n), advancing *pos. False when it does not parse.
bool op_decode(const uint8_t* p, size_t n, size_t* pos, Op* out);

// Checkpoint: everything the metadata holds, as of journal batch `journal_seq - 1`.
struct CheckpointHeader {
    uint64_t seq = 0;
    Uuid uuid{};
    uint64_t journal_seq = 0;  // the first batch to replay
    uint64_t journal_pos = 0;  // its byte offset in the journal
    uint64_t payload_bytes = 0;
    uint32_t next_id = 1;
    uint32_t lvols = 0;
};
// Encodes header + lvol records + the cluster allocation bitmap (one bit per cluster of the
// store; redundant with the records, so that the checker can tell leaked clusters) into `out`
// (resized to a multiple of page_bytes).
void ckpt_encode(const CheckpointHeader& h, const std::vector<const LvolMeta*>& lvols,
                 const std::vector<bool>& used, uint64_t page_bytes, std::vector<uint8_t>* out);
// Header only (the first kCkptHeaderBytes): false if not a checkpoint of this store.
bool ckpt_decode_header(const uint8_t* in, const Uuid& store, CheckpointHeader* h,
                        std::string* why);
// The whole checkpoint (header + payload_bytes), CRC checked.
bool ckpt_decode(const uint8_t* in, size_t n, const Uuid& store, CheckpointHeader* h,
                 std::vector<LvolMeta>* lvols, std::vector<bool>* used, std::string* why);

struct BatchHeader {
    Uuid uuid{};
    uint64_t seq = 0;
    uint32_t payload_bytes = 0;
    uint32_t ops = 0;
};
// Encodes a batch (header + ops, padded to page_bytes) into `out`.
void batch_encode(const Uuid& store, uint64_t seq, const std::vector<const Op*>& ops,
                  uint64_t page_bytes, std::vector<uint8_t>* out);
// Bytes a batch with `payload` bytes of ops takes in the journal.
uint64_t batch_bytes(uint64_t payload, uint64_t page_bytes);
// A valid batch of this store with sequence `seq` at `in` (n bytes available); its ops.
bool batch_decode(const uint8_t* in, size_t n, const Uuid& store, uint64_t seq, BatchHeader* h,
                  std::vector<Op>* ops);

using ::nocstor::crc32c;  // util/crc32c.h

}  // namespace nocstor::lvol
