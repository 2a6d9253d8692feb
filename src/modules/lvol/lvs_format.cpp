#include "modules/lvol/lvs_format.h"

#include "util/le_codec.h"

#include <algorithm>
#include <cstring>

namespace nocstor::lvol {

namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Superblock field offsets (version 1).
constexpr size_t kSbOffMagic = 0, kSbOffVersion = 8, kSbOffSize = 12, kSbOffCrc = 16,
                 kSbOffFlags = 20, kSbOffSeq = 24, kSbOffUuid = 32, kSbOffName = 48,
                 kSbOffBlock = 112, kSbOffPage = 120, kSbOffCluster = 128, kSbOffTotal = 136,
                 kSbOffMax = 144, kSbOffData = 152, kSbOffCkpt = 160, kSbOffCkptBytes = 168,
                 kSbOffJournal = 176, kSbOffJournalBytes = 184, kSbOffBase = 192;
constexpr uint32_t kSbFlagClean = 1;

// Checkpoint header offsets.
constexpr size_t kCkOffMagic = 0, kCkOffVersion = 8, kCkOffCrc = 12, kCkOffSeq = 16,
                 kCkOffUuid = 24, kCkOffJSeq = 40, kCkOffJPos = 48, kCkOffPayload = 56,
                 kCkOffNextId = 64, kCkOffLvols = 68;

// Batch header offsets.
constexpr size_t kBOffMagic = 0, kBOffCrc = 8, kBOffPayload = 12, kBOffUuid = 16, kBOffSeq = 32,
                 kBOffOps = 40;

// Bytes an lvol record takes at most besides its runs, and each run.
constexpr uint64_t kLvolRecordMax = 192, kRunBytes = 16;

using le::get;
using le::put;

uint64_t align_up(uint64_t v, uint64_t a) {
    return (v + a - 1) / a * a;
}

struct Writer {
    std::vector<uint8_t>* out;
    template <class T>
    void num(T v) {
        size_t n = out->size();
        out->resize(n + sizeof(T));
        std::memcpy(out->data() + n, &v, sizeof(T));
    }
    void bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        out->insert(out->end(), b, b + n);
    }
    void str(const std::string& s) {
        num<uint8_t>(uint8_t(std::min(s.size(), kMaxNameBytes)));
        bytes(s.data(), std::min(s.size(), kMaxNameBytes));
    }
    void runs(const std::vector<Run>& rs) {
        num<uint32_t>(uint32_t(rs.size()));
        for (const Run& r : rs) {
            num<uint64_t>(r.lidx);
            num<uint32_t>(r.pcl);
            num<uint32_t>(r.count);
        }
    }
};

struct Reader {
    const uint8_t* p;
    size_t n;
    size_t pos;
    bool ok = true;
    template <class T>
    T num() {
        T v{};
        if (!ok || n - pos < sizeof(T)) {
            ok = false;
            return v;
        }
        std::memcpy(&v, p + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    void bytes(void* out, size_t len) {
        if (!ok || n - pos < len) {
            ok = false;
            return;
        }
        std::memcpy(out, p + pos, len);
        pos += len;
    }
    std::string str() {
        const uint8_t len = num<uint8_t>();
        if (!ok || len > kMaxNameBytes || n - pos < len) {
            ok = false;
            return {};
        }
        std::string s(reinterpret_cast<const char*>(p + pos), len);
        pos += len;
        return s;
    }
    std::vector<Run> runs() {
        const uint32_t count = num<uint32_t>();
        std::vector<Run> rs;
        if (!ok || (n - pos) / kRunBytes < count) {
            ok = false;
            return rs;
        }
        rs.resize(count);
        for (Run& r : rs) {
            r.lidx = num<uint64_t>();
            r.pcl = num<uint32_t>();
            r.count = num<uint32_t>();
        }
        return rs;
    }
};

constexpr uint8_t kLvThin = 1, kLvReadOnly = 2, kLvSnapshot = 4;

void lvol_encode(const LvolMeta& l, bool with_runs, Writer& w) {
    w.num<uint32_t>(l.id);
    w.bytes(l.uuid.data(), l.uuid.size());
    w.str(l.name);
    w.num<uint64_t>(l.num_clusters);
    w.num<uint8_t>(uint8_t((l.thin ? kLvThin : 0) | (l.read_only ? kLvReadOnly : 0) |
                           (l.snapshot ? kLvSnapshot : 0)));
    w.num<uint8_t>(uint8_t(l.clear_method));
    w.num<uint32_t>(l.parent);
    w.str(l.esnap);
    if (with_runs) w.runs(l.runs());
}

bool lvol_decode(Reader& r, bool with_runs, LvolMeta* l) {
    l->id = r.num<uint32_t>();
    r.bytes(l->uuid.data(), l->uuid.size());
    l->name = r.str();
    l->num_clusters = r.num<uint64_t>();
    const uint8_t flags = r.num<uint8_t>();
    l->thin = flags & kLvThin;
    l->read_only = flags & kLvReadOnly;
    l->snapshot = flags & kLvSnapshot;
    const uint8_t cm = r.num<uint8_t>();
    l->clear_method = ClearMethod(cm);
    l->parent = r.num<uint32_t>();
    l->esnap = r.str();
    l->map.clear();
    if (!r.ok || cm > uint8_t(ClearMethod::WriteZeroes) || l->num_clusters > (1ull << 40))
        return false;
    if (!with_runs) return true;
    const std::vector<Run> runs = r.runs();
    if (!r.ok) return false;
    l->map.assign(l->num_clusters, kUnallocated);
    for (const Run& run : runs) {
        if (run.lidx > l->num_clusters || run.count > l->num_clusters - run.lidx) return false;
        for (uint32_t i = 0; i < run.count; ++i) l->map[run.lidx + i] = run.pcl + i;
    }
    return true;
}

}  // namespace

const char* clear_method_name(ClearMethod m) {
    switch (m) {
        case ClearMethod::None:
            return "none";
        case ClearMethod::Unmap:
            return "unmap";
        case ClearMethod::WriteZeroes:
            return "write_zeroes";
    }
    return "?";
}

bool clear_method_parse(const std::string& s, ClearMethod* out) {
    for (ClearMethod m : {ClearMethod::None, ClearMethod::Unmap, ClearMethod::WriteZeroes}) {
        if (s == clear_method_name(m)) {
            *out = m;
            return true;
        }
    }
    return false;
}

const char* op_type_name(OpType t) {
    switch (t) {
        case OpType::CreateLvol:
            return "create";
        case OpType::DeleteLvol:
            return "delete";
        case OpType::AllocRuns:
            return "allocate";
        case OpType::Resize:
            return "resize";
        case OpType::Snapshot:
            return "snapshot";
        case OpType::Rename:
            return "rename";
        case OpType::SetReadOnly:
            return "set_read_only";
        case OpType::SetParent:
            return "set_parent";
        case OpType::MergeSnapshot:
            return "merge_snapshot";
    }
    return "?";
}

uint64_t LvolMeta::allocated() const {
    return uint64_t(
        std::count_if(map.begin(), map.end(), [](uint32_t c) { return c != kUnallocated; }));
}

std::vector<Run> LvolMeta::runs() const {
    std::vector<Run> out;
    for (uint64_t i = 0; i < map.size(); ++i) {
        if (map[i] == kUnallocated) continue;
        if (!out.empty()) {
            Run& last = out.back();
            if (last.lidx + last.count == i && uint64_t(last.pcl) + last.count == map[i] &&
                last.count < UINT32_MAX) {
                ++last.count;
                continue;
            }
        }
        out.push_back({i, map[i], 1});
    }
    return out;
}

bool layout_new(uint64_t base_bytes, uint32_t block_size, uint64_t cluster_bytes, Superblock* sb,
                std::string* why) {
    if (block_size == 0 || (block_size & (block_size - 1)) || block_size > 65536) {
        *why = "block size " + std::to_string(block_size) + " is not a power of two up to 64 KiB";
        return false;
    }
    const uint64_t page = std::max<uint64_t>(4096, block_size);
    if (cluster_bytes < page || (cluster_bytes & (cluster_bytes - 1)) ||
        cluster_bytes > (1ull << 30)) {
        *why = "cluster size " + std::to_string(cluster_bytes) +
               " must be a power of two between the metadata page (" + std::to_string(page) +
               " B) and 1 GiB";
        return false;
    }
    *sb = Superblock{};
    sb->block_size = block_size;
    sb->page_bytes = page;
    sb->cluster_bytes = cluster_bytes;
    sb->base_bytes = base_bytes;
    // Room for the store to grow to 4x its clusters, and for one lvol per cluster (at least 1024,
    // at most 65536), every cluster in a run of its own.
    const uint64_t est = base_bytes / cluster_bytes;
    sb->max_clusters = std::max<uint64_t>(est * 4, 64);
    const uint64_t max_lvols = std::clamp<uint64_t>(sb->max_clusters, 1024, 65536);
    sb->ckpt_offset = std::max<uint64_t>(kMiB, 2 * page);
    sb->ckpt_bytes = align_up(
        kCkptHeaderBytes + max_lvols * kLvolRecordMax + sb->max_clusters * (kRunBytes + 4), kMiB);
    sb->journal_offset = sb->ckpt_offset + 2 * sb->ckpt_bytes;
    // Any single operation fits: a thick lvol of every cluster, each a run of its own.
    sb->journal_bytes =
        std::clamp<uint64_t>(align_up(est * kRunBytes + 2 * kMiB, kMiB), 4 * kMiB, 256 * kMiB);
    sb->data_offset = align_up(sb->journal_offset + sb->journal_bytes, kMiB);
    sb->data_offset = align_up(sb->data_offset, std::min<uint64_t>(cluster_bytes, 4 * kMiB));
    sb->total_clusters = clusters_for(*sb, base_bytes);
    if (sb->total_clusters == 0) {
        *why = "a base of " + std::to_string(base_bytes) + " B cannot hold the metadata (" +
               std::to_string(sb->data_offset) + " B) and one cluster of " +
               std::to_string(cluster_bytes) + " B";
        return false;
    }
    if (sb->ckpt_bytes > (4ull << 30)) {
        *why = "clusters of " + std::to_string(cluster_bytes) + " B on a base this large need " +
               std::to_string(sb->ckpt_bytes >> 20) +
               " MiB per checkpoint: use a larger cluster size";
        return false;
    }
    if (sb->total_clusters >= kUnallocated) {
        *why = "too many clusters: use a larger cluster size";
        return false;
    }
    return true;
}

uint64_t clusters_for(const Superblock& sb, uint64_t base_bytes) {
    if (base_bytes <= sb.data_offset) return 0;
    return (base_bytes - sb.data_offset) / sb.cluster_bytes;
}

bool sb_has_magic(const uint8_t* in) {
    return std::memcmp(in, kSbMagic, 8) == 0;
}

void sb_encode(const Superblock& sb, uint8_t* out) {
    std::memset(out, 0, kSbBytes);
    std::memcpy(out + kSbOffMagic, kSbMagic, 8);
    put<uint32_t>(out, kSbOffVersion, kFormatVersion);
    put<uint32_t>(out, kSbOffSize, kSbBytes);
    put<uint32_t>(out, kSbOffFlags, sb.clean ? kSbFlagClean : 0);
    put<uint64_t>(out, kSbOffSeq, sb.seq);
    std::memcpy(out + kSbOffUuid, sb.uuid.data(), 16);
    std::memcpy(out + kSbOffName, sb.name.data(), std::min(sb.name.size(), kMaxNameBytes));
    put<uint32_t>(out, kSbOffBlock, sb.block_size);
    put<uint64_t>(out, kSbOffPage, sb.page_bytes);
    put<uint64_t>(out, kSbOffCluster, sb.cluster_bytes);
    put<uint64_t>(out, kSbOffTotal, sb.total_clusters);
    put<uint64_t>(out, kSbOffMax, sb.max_clusters);
    put<uint64_t>(out, kSbOffData, sb.data_offset);
    put<uint64_t>(out, kSbOffCkpt, sb.ckpt_offset);
    put<uint64_t>(out, kSbOffCkptBytes, sb.ckpt_bytes);
    put<uint64_t>(out, kSbOffJournal, sb.journal_offset);
    put<uint64_t>(out, kSbOffJournalBytes, sb.journal_bytes);
    put<uint64_t>(out, kSbOffBase, sb.base_bytes);
    put<uint32_t>(out, kSbOffCrc, crc32c(out, kSbBytes));
}

bool sb_decode(const uint8_t* in, Superblock* out, std::string* why) {
    if (!sb_has_magic(in)) return (*why = "no lvstore superblock"), false;
    if (get<uint32_t>(in, kSbOffVersion) != kFormatVersion) {
        *why = "lvstore format version " + std::to_string(get<uint32_t>(in, kSbOffVersion)) +
               " (this build reads version " + std::to_string(kFormatVersion) + ")";
        return false;
    }
    if (get<uint32_t>(in, kSbOffSize) != kSbBytes) return (*why = "bad superblock size"), false;
    uint8_t copy[kSbBytes];
    std::memcpy(copy, in, kSbBytes);
    put<uint32_t>(copy, kSbOffCrc, 0);
    if (crc32c(copy, kSbBytes) != get<uint32_t>(in, kSbOffCrc))
        return (*why = "superblock checksum mismatch"), false;
    Superblock sb;
    sb.clean = get<uint32_t>(in, kSbOffFlags) & kSbFlagClean;
    sb.seq = get<uint64_t>(in, kSbOffSeq);
    std::memcpy(sb.uuid.data(), in + kSbOffUuid, 16);
    const char* name = reinterpret_cast<const char*>(in + kSbOffName);
    sb.name.assign(name, strnlen(name, kMaxNameBytes));
    sb.block_size = get<uint32_t>(in, kSbOffBlock);
    sb.page_bytes = get<uint64_t>(in, kSbOffPage);
    sb.cluster_bytes = get<uint64_t>(in, kSbOffCluster);
    sb.total_clusters = get<uint64_t>(in, kSbOffTotal);
    sb.max_clusters = get<uint64_t>(in, kSbOffMax);
    sb.data_offset = get<uint64_t>(in, kSbOffData);
    sb.ckpt_offset = get<uint64_t>(in, kSbOffCkpt);
    sb.ckpt_bytes = get<uint64_t>(in, kSbOffCkptBytes);
    sb.journal_offset = get<uint64_t>(in, kSbOffJournal);
    sb.journal_bytes = get<uint64_t>(in, kSbOffJournalBytes);
    sb.base_bytes = get<uint64_t>(in, kSbOffBase);
    const uint64_t p = sb.page_bytes;
    const bool sane =
        p >= 4096 && (p & (p - 1)) == 0 && sb.block_size && p % sb.block_size == 0 &&
        sb.cluster_bytes >= p && (sb.cluster_bytes & (sb.cluster_bytes - 1)) == 0 &&
        sb.ckpt_offset >= 2 * p && sb.ckpt_offset % p == 0 && sb.ckpt_bytes % p == 0 &&
        sb.journal_offset == sb.ckpt_offset + 2 * sb.ckpt_bytes && sb.journal_bytes % p == 0 &&
        sb.journal_bytes >= 4 * p && sb.data_offset >= sb.journal_offset + sb.journal_bytes &&
        sb.total_clusters <= sb.max_clusters && sb.total_clusters < kUnallocated;
    if (!sane) return (*why = "superblock geometry is inconsistent"), false;
    *out = sb;
    return true;
}

void op_encode(const Op& op, std::vector<uint8_t>* out) {
    Writer w{out};
    w.num<uint8_t>(uint8_t(op.type));
    switch (op.type) {
        case OpType::CreateLvol:
            lvol_encode(op.lvol, true, w);
            break;
        case OpType::DeleteLvol:
        case OpType::SetReadOnly:
            w.num<uint32_t>(op.id);
            break;
        case OpType::AllocRuns:
            w.num<uint32_t>(op.id);
            w.runs(op.runs);
            break;
        case OpType::Resize:
            w.num<uint32_t>(op.id);
            w.num<uint64_t>(op.num);
            w.runs(op.runs);
            break;
        case OpType::Snapshot:
            w.num<uint32_t>(op.id);
            lvol_encode(op.lvol, false, w);
            break;
        case OpType::Rename:
            w.num<uint32_t>(op.id);
            w.str(op.name);
            break;
        case OpType::SetParent:
            w.num<uint32_t>(op.id);
            w.num<uint32_t>(op.other);
            w.str(op.name);
            break;
        case OpType::MergeSnapshot:
            w.num<uint32_t>(op.id);
            w.num<uint32_t>(op.other);
            break;
    }
}

bool op_decode(const uint8_t* p, size_t n, size_t* pos, Op* out) {
    Reader r{p, n, *pos};
    Op op;
    op.type = OpType(r.num<uint8_t>());
    switch (op.type) {
        case OpType::CreateLvol:
            if (!lvol_decode(r, true, &op.lvol)) return false;
            break;
        case OpType::DeleteLvol:
        case OpType::SetReadOnly:
            op.id = r.num<uint32_t>();
            break;
        case OpType::AllocRuns:
            op.id = r.num<uint32_t>();
            op.runs = r.runs();
            break;
        case OpType::Resize:
            op.id = r.num<uint32_t>();
            op.num = r.num<uint64_t>();
            op.runs = r.runs();
            break;
        case OpType::Snapshot:
            op.id = r.num<uint32_t>();
            if (!lvol_decode(r, false, &op.lvol)) return false;
            break;
        case OpType::Rename:
            op.id = r.num<uint32_t>();
            op.name = r.str();
            break;
        case OpType::SetParent:
            op.id = r.num<uint32_t>();
            op.other = r.num<uint32_t>();
            op.name = r.str();
            break;
        case OpType::MergeSnapshot:
            op.id = r.num<uint32_t>();
            op.other = r.num<uint32_t>();
            break;
        default:
            return false;
    }
    if (!r.ok) return false;
    *pos = r.pos;
    *out = std::move(op);
    return true;
}

void ckpt_encode(const CheckpointHeader& h, const std::vector<const LvolMeta*>& lvols,
                 const std::vector<bool>& used, uint64_t page_bytes, std::vector<uint8_t>* out) {
    out->assign(kCkptHeaderBytes, 0);
    Writer w{out};
    for (const LvolMeta* l : lvols) lvol_encode(*l, true, w);
    w.num<uint64_t>(used.size());
    std::vector<uint8_t> bits((used.size() + 7) / 8, 0);
    for (size_t c = 0; c < used.size(); ++c)
        if (used[c]) bits[c / 8] |= uint8_t(1u << (c % 8));
    w.bytes(bits.data(), bits.size());
    const uint64_t payload = out->size() - kCkptHeaderBytes;
    out->resize(align_up(out->size(), page_bytes), 0);
    uint8_t* p = out->data();
    std::memcpy(p + kCkOffMagic, kCkptMagic, 8);
    put<uint32_t>(p, kCkOffVersion, kFormatVersion);
    put<uint64_t>(p, kCkOffSeq, h.seq);
    std::memcpy(p + kCkOffUuid, h.uuid.data(), 16);
    put<uint64_t>(p, kCkOffJSeq, h.journal_seq);
    put<uint64_t>(p, kCkOffJPos, h.journal_pos);
    put<uint64_t>(p, kCkOffPayload, payload);
    put<uint32_t>(p, kCkOffNextId, h.next_id);
    put<uint32_t>(p, kCkOffLvols, uint32_t(lvols.size()));
    put<uint32_t>(p, kCkOffCrc, 0);
    put<uint32_t>(p, kCkOffCrc, crc32c(p, kCkptHeaderBytes + payload));
}

bool ckpt_decode_header(const uint8_t* in, const Uuid& store, CheckpointHeader* h,
                        std::string* why) {
    if (std::memcmp(in + kCkOffMagic, kCkptMagic, 8) != 0) return (*why = "no checkpoint"), false;
    if (get<uint32_t>(in, kCkOffVersion) != kFormatVersion)
        return (*why = "checkpoint of another format version"), false;
    Uuid u;
    std::memcpy(u.data(), in + kCkOffUuid, 16);
    if (u != store) return (*why = "checkpoint of another lvstore"), false;
    h->seq = get<uint64_t>(in, kCkOffSeq);
    h->uuid = u;
    h->journal_seq = get<uint64_t>(in, kCkOffJSeq);
    h->journal_pos = get<uint64_t>(in, kCkOffJPos);
    h->payload_bytes = get<uint64_t>(in, kCkOffPayload);
    h->next_id = get<uint32_t>(in, kCkOffNextId);
    h->lvols = get<uint32_t>(in, kCkOffLvols);
    return true;
}

bool ckpt_decode(const uint8_t* in, size_t n, const Uuid& store, CheckpointHeader* h,
                 std::vector<LvolMeta>* lvols, std::vector<bool>* used, std::string* why) {
    if (n < kCkptHeaderBytes || !ckpt_decode_header(in, store, h, why)) {
        if (n < kCkptHeaderBytes) *why = "checkpoint truncated";
        return false;
    }
    if (h->payload_bytes > n - kCkptHeaderBytes) return (*why = "checkpoint truncated"), false;
    std::vector<uint8_t> head(in, in + kCkptHeaderBytes);
    put<uint32_t>(head.data(), kCkOffCrc, 0);
    uint32_t crc = crc32c_update(kCrc32cInitial, head.data(), kCkptHeaderBytes);
    crc = crc32c_update(crc, in + kCkptHeaderBytes, h->payload_bytes) ^ kCrc32cFinalXor;
    if (crc != get<uint32_t>(in, kCkOffCrc)) return (*why = "checkpoint checksum mismatch"), false;
    Reader r{in + kCkptHeaderBytes, size_t(h->payload_bytes), 0};
    lvols->clear();
    for (uint32_t i = 0; i < h->lvols; ++i) {
        LvolMeta l;
        if (!lvol_decode(r, true, &l))
            return (*why = "checkpoint lvol record does not parse"), false;
        lvols->push_back(std::move(l));
    }
    const uint64_t clusters = r.num<uint64_t>();
    if (!r.ok || (r.n - r.pos) < (clusters + 7) / 8)
        return (*why = "checkpoint allocation bitmap truncated"), false;
    used->assign(clusters, false);
    for (uint64_t c = 0; c < clusters; ++c) used->at(c) = r.p[r.pos + c / 8] & (1u << (c % 8));
    return true;
}

uint64_t batch_bytes(uint64_t payload, uint64_t page_bytes) {
    return align_up(kBatchHeaderBytes + payload, page_bytes);
}

void batch_encode(const Uuid& store, uint64_t seq, const std::vector<const Op*>& ops,
                  uint64_t page_bytes, std::vector<uint8_t>* out) {
    out->assign(kBatchHeaderBytes, 0);
    for (const Op* op : ops) op_encode(*op, out);
    const uint64_t payload = out->size() - kBatchHeaderBytes;
    out->resize(batch_bytes(payload, page_bytes), 0);
    uint8_t* p = out->data();
    std::memcpy(p + kBOffMagic, kBatchMagic, 8);
    put<uint32_t>(p, kBOffPayload, uint32_t(payload));
    std::memcpy(p + kBOffUuid, store.data(), 16);
    put<uint64_t>(p, kBOffSeq, seq);
    put<uint32_t>(p, kBOffOps, uint32_t(ops.size()));
    put<uint32_t>(p, kBOffCrc, 0);
    put<uint32_t>(p, kBOffCrc, crc32c(p, kBatchHeaderBytes + payload));
}

bool batch_decode(const uint8_t* in, size_t n, const Uuid& store, uint64_t seq, BatchHeader* h,
                  std::vector<Op>* ops) {
    if (n < kBatchHeaderBytes || std::memcmp(in + kBOffMagic, kBatchMagic, 8) != 0) return false;
    Uuid u;
    std::memcpy(u.data(), in + kBOffUuid, 16);
    if (u != store || get<uint64_t>(in, kBOffSeq) != seq) return false;
    const uint32_t payload = get<uint32_t>(in, kBOffPayload);
    if (payload > n - kBatchHeaderBytes) return false;
    uint8_t head[kBatchHeaderBytes];
    std::memcpy(head, in, kBatchHeaderBytes);
    put<uint32_t>(head, kBOffCrc, 0);
    uint32_t crc = crc32c_update(kCrc32cInitial, head, kBatchHeaderBytes);
    crc = crc32c_update(crc, in + kBatchHeaderBytes, payload) ^ kCrc32cFinalXor;
    if (crc != get<uint32_t>(in, kBOffCrc)) return false;
    h->uuid = u;
    h->seq = seq;
    h->payload_bytes = payload;
    h->ops = get<uint32_t>(in, kBOffOps);
    ops->clear();
    size_t pos = 0;
    for (uint32_t i = 0; i < h->ops; ++i) {
        Op op;
        if (!op_decode(in + kBatchHeaderBytes, payload, &pos, &op)) return false;
        ops->push_back(std::move(op));
    }
    return pos == payload;
}

}  // namespace nocstor::lvol
