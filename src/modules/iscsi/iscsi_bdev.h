// The "iscsi" bdev module: a LUN of a remote iSCSI target as a bdev, through libiscsi's
// asynchronous API (SPDK's bdev_iscsi methods and URL form). Unlike SPDK's, a LUN can be reached
// over several sessions, each owned by one data thread of the bdev's cluster (I/O from other
// threads is handed to the session's thread by message), and a broken session reconnects with
// back-off while its I/O waits: nothing is acknowledged without the target's GOOD status, and
// I/O not completed within timeout_sec fails. See docs/iscsi-bdev.md.
//
// Everything here runs on the control thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json_fwd.hpp>

namespace nocstor {
class BdevModule;
}

namespace nocstor::iscsi {

struct IscsiCreateOptions {
    std::string name;
    std::string initiator_iqn;
    // iscsi://[user[%password]@]host[:port]/target-iqn/lun, libiscsi's query arguments allowed
    // (?target_user=...&target_password=... for mutual CHAP, header_digest=crc32c).
    std::string url;
    uint32_t sessions = 1;       // connections to the LUN, spread over the cluster's threads
    bool header_digest = false;  // require CRC32C header digests
    bool data_digest = false;    // refused: libiscsi has no data digest
};

struct IscsiGlobalOptions {
    // An I/O not completed this long after it was submitted fails (a command in flight that
    // long also breaks its session, which reconnects). 0: wait for ever (SPDK's meaning).
    uint64_t timeout_sec = 30;
};

using IscsiCreateDone = std::function<void(int rc, std::string err)>;
// Connects the first session, reads the LUN's geometry and capabilities, registers the bdev
// and starts the other sessions. done(0) or done(-errno, message); nothing is left on failure.
void iscsi_bdev_create(const IscsiCreateOptions& opts, IscsiCreateDone done);
// Unregisters the bdev (its sessions log out). done(-ENODEV) for a name that is not ours.
void iscsi_bdev_delete(const std::string& name, std::function<void(int)> done);
// Applies to I/O submitted afterwards.
int iscsi_set_options(const IscsiGlobalOptions& opts, std::string* err);
IscsiGlobalOptions iscsi_get_options();

BdevModule* iscsi_bdev_module();

}  // namespace nocstor::iscsi
