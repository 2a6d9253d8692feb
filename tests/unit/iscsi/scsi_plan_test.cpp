// The SCSI command set's decoding and its data-building commands (no bdev I/O needed).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "iscsi/scsi/scsi.h"
#include "iscsi/target_config.h"

namespace nocstor::scsi {
namespace {

struct Fixture {
    std::shared_ptr<Lun> lun = std::make_shared<Lun>();
    LunTable luns;
    std::vector<uint8_t> buf = std::vector<uint8_t>(8192, 0xee);
    Task t;
    bool done = false;

    Fixture() {
        lun->id = 0;
        lun->block_size = 512;
        lun->num_blocks = 1000;
        lun->unmap = true;
        lun->uuid[0] = 0x12;
        luns.push_back(lun);
        auto lun3 = std::make_shared<Lun>(*lun);
        lun3->id = 3;
        luns.push_back(lun3);
        t.lun = lun.get();
        t.luns = &luns;
        t.nexus = 1;
        t.done = [](Task*, void* arg) { *static_cast<bool*>(arg) = true; };
        t.done_arg = &done;
    }
    void cdb(std::initializer_list<uint8_t> bytes) {
        std::memset(t.cdb, 0, 16);
        std::copy(bytes.begin(), bytes.end(), t.cdb);
    }
    // plan + execute for commands that need no bdev.
    void run() {
        plan(t);
        t.iov[0] = {buf.data(), buf.size()};
        t.iovcnt = 1;
        t.data_len = uint32_t(std::min<size_t>(t.xfer_len, buf.size()));
        t.iov[0].iov_len = t.data_len;
        done = false;
        execute(t);
        EXPECT_TRUE(done);
    }
    uint16_t asc() const { return uint16_t(t.sense[12] << 8 | t.sense[13]); }
};

TEST(ScsiPlan, ReadsAndWritesGetTheirLengthAndRangeChecks) {
    Fixture f;
    f.cdb({0x28, 0, 0, 0, 0, 10, 0, 0, 8, 0});  // READ(10) lba 10, 8 blocks
    plan(f.t);
    EXPECT_EQ(f.t.status, kGood);
    EXPECT_EQ(f.t.dir, DataDir::In);
    EXPECT_EQ(f.t.xfer_len, 8u * 512);
    f.cdb({0x2a, 0, 0, 0, 0x03, 0xe0, 0, 0, 9, 0});  // WRITE(10) lba 992 + 9 > 1000
    plan(f.t);
    EXPECT_EQ(f.t.status, kCheckCondition);
    EXPECT_EQ(f.t.sense[2], kIllegalRequest);
    EXPECT_EQ(f.asc(), kAscLbaOutOfRange);
    EXPECT_EQ(f.t.dir, DataDir::None);
    f.cdb({0x28, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 0});  // READ(10) 0 blocks at the end: fine
    plan(f.t);
    EXPECT_EQ(f.t.status, kGood);
    EXPECT_EQ(f.t.dir, DataDir::None);
    f.cdb({0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0});  // RDPROTECT without protection info
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0x08, 0, 0, 0, 0, 0});  // READ(6) with 0 = 256 blocks
    plan(f.t);
    EXPECT_EQ(f.t.xfer_len, 256u * 512);
    f.cdb({0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 1, 0, 0});  // READ(16) 64 MiB + 512 B
    f.lun->num_blocks = 1 << 20;
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);  // over the maximum transfer length
}

TEST(ScsiPlan, WriteProtectionUnmapSupportAndUnknownOpcodes) {
    Fixture f;
    f.lun->read_only = true;
    f.cdb({0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0});
    plan(f.t);
    EXPECT_EQ(f.t.sense[2], kDataProtect);
    EXPECT_EQ(f.asc(), kAscWriteProtected);
    f.lun->read_only = false;
    f.lun->unmap = false;
    f.cdb({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0});
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidOpcode);
    f.cdb({0x93, 0x08, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0});  // WRITE SAME(16) UNMAP
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0x41, 0x10, 0, 0, 0, 0, 0, 0, 1, 0});  // ANCHOR
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0});  // 0 blocks, WSNZ
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0xd5});
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscInvalidOpcode);
    f.t.lun = nullptr;  // no such LUN: only INQUIRY, REPORT LUNS, REQUEST SENSE
    f.cdb({0x00});
    plan(f.t);
    EXPECT_EQ(f.asc(), kAscLunNotSupported);
}

TEST(ScsiSpc, InquiryStandardAndVpdPages) {
    Fixture f;
    f.cdb({0x12, 0, 0, 0, 255, 0});
    f.run();
    ASSERT_EQ(f.t.status, kGood);
    EXPECT_EQ(f.t.data_in_len, 96u);
    EXPECT_EQ(f.buf[0], 0x00);  // disk, connected
    EXPECT_EQ(f.buf[2], 0x06);  // SPC-4
    EXPECT_EQ(std::string(reinterpret_cast<char*>(f.buf.data()) + 8, 8), "NOCSTOR ");
    f.cdb({0x12, 1, 0x00, 0, 255, 0});
    f.run();
    EXPECT_EQ(f.buf[1], 0x00);
    EXPECT_EQ(f.buf[3], 6);  // six pages
    EXPECT_EQ(f.buf[4 + 5], 0xb2);
    f.cdb({0x12, 1, 0xb0, 0, 255, 0});
    f.run();
    EXPECT_EQ(f.buf[3], 0x3c);
    EXPECT_EQ(f.buf[4] & 1, 1);  // WSNZ
    EXPECT_EQ(uint32_t(f.buf[8]) << 24 | f.buf[9] << 16 | f.buf[10] << 8 | f.buf[11],
              (64u << 20) / 512);
    f.cdb({0x12, 1, 0xb2, 0, 255, 0});
    f.run();
    EXPECT_EQ(f.buf[5] & 0x80, 0x80);  // LBPU
    f.cdb({0x12, 1, 0x83, 0, 255, 0});
    f.run();
    EXPECT_EQ(f.buf[4 + 1] & 0x0f, 0x03);  // NAA designator first
    EXPECT_EQ(f.buf[8] >> 4, 0x6);
    f.cdb({0x12, 1, 0x42, 0, 255, 0});  // unknown page
    f.run();
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0x12, 0, 0, 0, 4, 0});  // allocation length 4: 4 bytes
    f.run();
    EXPECT_EQ(f.t.data_in_len, 4u);
    f.t.lun = nullptr;
    f.cdb({0x12, 0, 0, 0, 36, 0});
    f.run();
    EXPECT_EQ(f.buf[0], 0x7f);  // no LU
}

TEST(ScsiSpc, CapacityReportLunsModeSense) {
    Fixture f;
    f.cdb({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    f.run();
    EXPECT_EQ(f.buf[3], 0xe7);  // 999 = last LBA
    EXPECT_EQ(f.buf[6], 0x02);  // 512
    f.cdb({0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0});
    f.run();
    EXPECT_EQ(f.t.data_in_len, 32u);
    EXPECT_EQ(f.buf[14] & 0x80, 0x80);  // LBPME
    f.cdb({0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0});
    f.run();
    EXPECT_EQ(f.buf[3], 16);  // two LUNs
    EXPECT_EQ(f.buf[8 + 8 + 1], 3);
    f.cdb({0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0});  // allocation length < 16
    f.run();
    EXPECT_EQ(f.asc(), kAscInvalidFieldInCdb);
    f.cdb({0x1a, 0, 0x3f, 0, 255, 0});  // MODE SENSE(6), all pages
    f.run();
    ASSERT_EQ(f.t.status, kGood);
    EXPECT_EQ(f.buf[3], 8);  // block descriptor
    EXPECT_EQ(f.buf[0] + 1u, f.t.data_in_len);
    f.cdb({0x1a, 0, 0xc8, 0, 255, 0});  // saved values
    f.run();
    EXPECT_EQ(f.asc(), kAscSavingParamsNotSupported);
    f.cdb({0x5a, 0x08, 0x08, 0, 0, 0, 0, 0, 255, 0});  // MODE SENSE(10) caching, no BD
    f.run();
    EXPECT_EQ(f.buf[8], 0x08);
    EXPECT_EQ(f.t.data_in_len, 8u + 20);
}

TEST(ScsiSpc, ReserveSixHoldsTheLunForOneNexus) {
    Fixture f;
    f.cdb({0x16, 0, 0, 0, 0, 0});
    f.run();
    EXPECT_EQ(f.t.status, kGood);
    Task& t = f.t;
    t.nexus = 2;  // another session
    f.cdb({0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0});
    plan(t);
    check_reservation(t);
    EXPECT_EQ(t.status, kReservationConflict);
    f.cdb({0x12, 0, 0, 0, 36, 0});  // INQUIRY passes
    plan(t);
    check_reservation(t);
    EXPECT_EQ(t.status, kGood);
    f.cdb({0x16, 0, 0, 0, 0, 0});  // RESERVE by the other one: conflict
    plan(t);
    check_reservation(t);
    EXPECT_EQ(t.status, kReservationConflict);
    release_reservation(*f.lun, 2);  // not the holder: nothing happens
    EXPECT_EQ(f.lun->shared->reserved_by.load(), 1u);
    release_reservation(*f.lun, 1);
    EXPECT_EQ(f.lun->shared->reserved_by.load(), 0u);
}

}  // namespace
}  // namespace nocstor::scsi

namespace nocstor::scsi {
namespace {

// PERSISTENT RESERVE OUT with a 24-byte parameter list (runs inline without a runtime).
int prout(Fixture& f, uint64_t nexus, uint8_t sa, uint8_t type, uint64_t key, uint64_t sa_key) {
    f.t.nexus = nexus;
    f.cdb({0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0});
    plan(f.t);
    std::fill(f.buf.begin(), f.buf.begin() + 24, 0);
    for (int i = 0; i < 8; ++i) {
        f.buf[size_t(i)] = uint8_t(key >> (56 - 8 * i));
        f.buf[size_t(8 + i)] = uint8_t(sa_key >> (56 - 8 * i));
    }
    f.t.iov[0] = {f.buf.data(), 24};
    f.t.iovcnt = 1;
    f.t.data_len = 24;
    check_reservation(f.t);
    f.done = false;
    execute(f.t);
    EXPECT_TRUE(f.done);
    return f.t.status;
}

int status_of(Fixture& f, uint64_t nexus, std::initializer_list<uint8_t> cdb) {
    f.t.nexus = nexus;
    f.cdb(cdb);
    plan(f.t);
    check_reservation(f.t);
    return f.t.status;
}

TEST(ScsiPersistentReservations, RegisterReserveConflictPreemptAndClear) {
    Fixture f;
    const std::initializer_list<uint8_t> write10 = {0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    const std::initializer_list<uint8_t> read10 = {0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    EXPECT_EQ(prout(f, 11, 0x00, 0, 0, 0xaa), kGood);  // REGISTER key aa
    EXPECT_EQ(prout(f, 22, 0x00, 0, 0, 0xbb), kGood);
    EXPECT_EQ(prout(f, 22, 0x00, 0, 0x99, 0xcc), kReservationConflict);  // wrong old key
    EXPECT_EQ(prout(f, 11, 0x01, 0x01, 0xaa, 0), kGood);                 // RESERVE Write Exclusive
    EXPECT_EQ(status_of(f, 22, write10), kReservationConflict);
    EXPECT_EQ(status_of(f, 22, read10), kGood);  // reads pass under Write Exclusive
    EXPECT_EQ(status_of(f, 11, write10), kGood);
    EXPECT_EQ(prout(f, 22, 0x01, 0x01, 0xbb, 0), kReservationConflict);  // held by 11
    // READ KEYS: generation and both keys.
    f.t.nexus = 22;
    f.cdb({0x5e, 0x00, 0, 0, 0, 0, 0, 0x01, 0, 0});
    f.run();
    EXPECT_EQ(f.buf[7], 16);  // two keys
    // PREEMPT: 22 takes the reservation away from key aa, as Exclusive Access.
    EXPECT_EQ(prout(f, 22, 0x04, 0x03, 0xbb, 0xaa), kGood);
    EXPECT_EQ(status_of(f, 11, read10), kReservationConflict);
    EXPECT_EQ(prout(f, 11, 0x00, 0, 0xaa, 0), kReservationConflict);  // no longer registered
    EXPECT_EQ(prout(f, 22, 0x02, 0x01, 0xbb, 0), kCheckCondition);    // RELEASE, wrong type
    EXPECT_EQ(prout(f, 22, 0x03, 0, 0xbb, 0), kGood);                 // CLEAR
    EXPECT_EQ(status_of(f, 11, write10), kGood);
    EXPECT_EQ(f.lun->shared->pr_type.load(), 0);
}

}  // namespace
}  // namespace nocstor::scsi
