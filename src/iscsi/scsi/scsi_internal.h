// Shared by the SCSI command files: CDB field readers and the synchronous (data-building)
// commands of spc_data.cpp that sbc_exec.cpp dispatches to.
#pragma once

#include "iscsi/scsi/scsi.h"
#include "util/be_codec.h"

namespace nocstor::scsi {

// Opcodes.
namespace op {
inline constexpr uint8_t kTestUnitReady = 0x00;
inline constexpr uint8_t kRequestSense = 0x03;
inline constexpr uint8_t kRead6 = 0x08;
inline constexpr uint8_t kWrite6 = 0x0a;
inline constexpr uint8_t kInquiry = 0x12;
inline constexpr uint8_t kModeSelect6 = 0x15;
inline constexpr uint8_t kReserve6 = 0x16;
inline constexpr uint8_t kRelease6 = 0x17;
inline constexpr uint8_t kModeSense6 = 0x1a;
inline constexpr uint8_t kStartStopUnit = 0x1b;
inline constexpr uint8_t kPreventAllow = 0x1e;
inline constexpr uint8_t kReadCapacity10 = 0x25;
inline constexpr uint8_t kRead10 = 0x28;
inline constexpr uint8_t kWrite10 = 0x2a;
inline constexpr uint8_t kWriteVerify10 = 0x2e;
inline constexpr uint8_t kVerify10 = 0x2f;
inline constexpr uint8_t kPrefetch10 = 0x34;
inline constexpr uint8_t kSyncCache10 = 0x35;
inline constexpr uint8_t kWriteSame10 = 0x41;
inline constexpr uint8_t kUnmap = 0x42;
inline constexpr uint8_t kModeSelect10 = 0x55;
inline constexpr uint8_t kModeSense10 = 0x5a;
inline constexpr uint8_t kPrIn = 0x5e;
inline constexpr uint8_t kPrOut = 0x5f;
inline constexpr uint8_t kRead16 = 0x88;
inline constexpr uint8_t kCompareAndWrite = 0x89;
inline constexpr uint8_t kWrite16 = 0x8a;
inline constexpr uint8_t kWriteVerify16 = 0x8e;
inline constexpr uint8_t kVerify16 = 0x8f;
inline constexpr uint8_t kPrefetch16 = 0x90;
inline constexpr uint8_t kSyncCache16 = 0x91;
inline constexpr uint8_t kWriteSame16 = 0x93;
inline constexpr uint8_t kServiceActionIn16 = 0x9e;
inline constexpr uint8_t kReportLuns = 0xa0;
inline constexpr uint8_t kMaintenanceIn = 0xa3;
inline constexpr uint8_t kRead12 = 0xa8;
inline constexpr uint8_t kWrite12 = 0xaa;
inline constexpr uint8_t kWriteVerify12 = 0xae;
inline constexpr uint8_t kVerify12 = 0xaf;
// SERVICE ACTION IN(16) actions.
inline constexpr uint8_t kSaReadCapacity16 = 0x10;
inline constexpr uint8_t kSaGetLbaStatus = 0x12;
// MAINTENANCE IN actions.
inline constexpr uint8_t kSaReportSupportedOpcodes = 0x0c;
}  // namespace op

// The most COMPARE AND WRITE takes: both halves fit one small pool buffer.
uint32_t max_compare_and_write_blocks(const Lun& lun);
// Blocks of a WRITE SAME (the pattern is written in chunks, zeroes as write-zeroes).
inline constexpr uint32_t kMaxWriteSameBlocks = 1u << 24;
inline constexpr uint32_t kMaxUnmapDescriptors = 256;

// spc_data.cpp: commands that only produce data (or nothing) and finish at once. Each fills
// t.data_in_len / the status and returns.
void spc_inquiry(Task& t);
void spc_mode_sense(Task& t, bool ten);
void spc_mode_select(Task& t, bool ten);
void spc_report_luns(Task& t);
void spc_request_sense(Task& t);
void sbc_read_capacity10(Task& t);
void sbc_read_capacity16(Task& t);
void sbc_get_lba_status(Task& t);
void spc_reserve6(Task& t);
void spc_report_supported_opcodes(Task& t);
// PERSISTENT RESERVE IN / OUT: run on the control thread, then t.done on the task's thread.
void spc_persistent_reserve(Task& t);
// Whether the persistent reservation lets this command through (check_reservation).
bool pr_allows(const Task& t);
void spc_release6(Task& t);

}  // namespace nocstor::scsi
