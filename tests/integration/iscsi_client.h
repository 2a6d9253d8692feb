// A small synchronous iSCSI initiator for the tests, on libiscsi (the library the iSCSI bdev
// uses too): log in (CHAP, digests), read and write, discovery, and many commands at once.
#pragma once

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>
#include <poll.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::testing {

struct IscsiLogin {
    std::string initiator = "iqn.2026-12.io.nocstor:test-host";
    std::string user, secret;    // CHAP
    std::string tuser, tsecret;  // mutual CHAP
    bool header_digest = false;
};

class IscsiClient {
  public:
    IscsiClient(const std::string& portal, const std::string& target, int lun,
                const IscsiLogin& l = {})
        : lun_(lun) {
        ctx_ = iscsi_create_context(l.initiator.c_str());
        iscsi_set_targetname(ctx_, target.c_str());
        iscsi_set_session_type(ctx_, ISCSI_SESSION_NORMAL);
        iscsi_set_noautoreconnect(ctx_, 1);
        iscsi_set_timeout(ctx_, 10);
        iscsi_set_header_digest(
            ctx_, l.header_digest ? ISCSI_HEADER_DIGEST_CRC32C : ISCSI_HEADER_DIGEST_NONE);
        if (!l.user.empty())
            iscsi_set_initiator_username_pwd(ctx_, l.user.c_str(), l.secret.c_str());
        if (!l.tuser.empty())
            iscsi_set_target_username_pwd(ctx_, l.tuser.c_str(), l.tsecret.c_str());
        logged_in_ = iscsi_full_connect_sync(ctx_, portal.c_str(), lun) == 0;
        if (!logged_in_) error_ = iscsi_get_error(ctx_);
    }
    ~IscsiClient() {
        if (logged_in_) iscsi_logout_sync(ctx_);
        iscsi_destroy_context(ctx_);
    }
    bool ok() const { return logged_in_; }
    const std::string& error() const { return error_; }
    iscsi_context* ctx() const { return ctx_; }

    // SCSI status (or -1 when the command did not complete).
    int write(uint64_t lba, const std::vector<uint8_t>& data, uint32_t bs) {
        scsi_task* t = iscsi_write16_sync(ctx_, lun_, lba, const_cast<uint8_t*>(data.data()),
                                          uint32_t(data.size()), int(bs), 0, 0, 0, 0, 0);
        return finish(t, nullptr);
    }
    int read(uint64_t lba, uint32_t len, uint32_t bs, std::vector<uint8_t>* out) {
        scsi_task* t = iscsi_read16_sync(ctx_, lun_, lba, len, int(bs), 0, 0, 0, 0, 0);
        return finish(t, out);
    }
    int sync_cache() {
        return finish(iscsi_synchronizecache10_sync(ctx_, lun_, 0, 0, 0, 0), nullptr);
    }
    int capacity(uint64_t* blocks, uint32_t* bs) {
        scsi_task* t = iscsi_readcapacity16_sync(ctx_, lun_);
        if (!t) return -1;
        int st = t->status;
        if (st == SCSI_STATUS_GOOD) {
            auto* rc = static_cast<scsi_readcapacity16*>(scsi_datain_unmarshall(t));
            if (rc) {
                *blocks = rc->returned_lba + 1;
                *bs = rc->block_length;
            }
        }
        scsi_free_scsi_task(t);
        return st;
    }
    // The last command's sense: key << 16 | ascq.
    uint32_t last_sense() const { return last_sense_; }

    // `n` writes of `bs`-byte blocks at once (libiscsi queues what the CmdSN window does not
    // take yet); returns how many completed with GOOD.
    int burst_write(uint64_t first_lba, int n, uint32_t bs, uint8_t fill) {
        struct State {
            int done = 0, good = 0;
        } st;
        std::vector<std::vector<uint8_t>> bufs(size_t(n), std::vector<uint8_t>(bs, fill));
        for (int i = 0; i < n; ++i) {
            if (!iscsi_write16_task(
                    ctx_, lun_, first_lba + uint64_t(i), bufs[size_t(i)].data(), bs, int(bs), 0, 0,
                    0, 0, 0,
                    [](iscsi_context*, int status, void* data, void* priv) {
                        auto* s = static_cast<State*>(priv);
                        ++s->done;
                        if (status == SCSI_STATUS_GOOD) ++s->good;
                        if (data) scsi_free_scsi_task(static_cast<scsi_task*>(data));
                    },
                    &st))
                return -1;
        }
        for (int spins = 0; st.done < n && spins < 20000; ++spins) {
            pollfd p{iscsi_get_fd(ctx_), short(iscsi_which_events(ctx_)), 0};
            if (poll(&p, 1, 1000) < 0) break;
            if (iscsi_service(ctx_, p.revents) < 0) break;
        }
        return st.good;
    }

  private:
    int finish(scsi_task* t, std::vector<uint8_t>* out) {
        if (!t) return -1;
        const int st = t->status;
        last_sense_ = uint32_t(t->sense.key) << 16 | t->sense.ascq;
        if (out && st == SCSI_STATUS_GOOD)
            out->assign(t->datain.data, t->datain.data + t->datain.size);
        scsi_free_scsi_task(t);
        return st;
    }

    iscsi_context* ctx_ = nullptr;
    int lun_;
    bool logged_in_ = false;
    std::string error_;
    uint32_t last_sense_ = 0;
};

// SendTargets through a discovery session: (target name, first portal) pairs; empty on error.
inline std::vector<std::pair<std::string, std::string>> iscsi_discover(const std::string& portal,
                                                                       const IscsiLogin& l = {}) {
    std::vector<std::pair<std::string, std::string>> out;
    iscsi_context* ctx = iscsi_create_context(l.initiator.c_str());
    iscsi_set_session_type(ctx, ISCSI_SESSION_DISCOVERY);
    if (!l.user.empty()) iscsi_set_initiator_username_pwd(ctx, l.user.c_str(), l.secret.c_str());
    if (iscsi_connect_sync(ctx, portal.c_str()) == 0 && iscsi_login_sync(ctx) == 0) {
        if (iscsi_discovery_address* d = iscsi_discovery_sync(ctx)) {
            for (auto* a = d; a; a = a->next)
                out.emplace_back(a->target_name, a->portals ? a->portals->portal : "");
            iscsi_free_discovery_data(ctx, d);
        }
        iscsi_logout_sync(ctx);
    }
    iscsi_destroy_context(ctx);
    return out;
}

}  // namespace nocstor::testing
