#include "fake_target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "nvmf/spec.h"
#include "nvmf/tcp_pdu.h"

namespace nocstor::test {

using namespace nocstor::nvmf::tcp;
namespace nv = nocstor::nvme;

struct FakeTarget::Conn : PduHandler {
    FakeTarget* t;
    int fd;
    PduReceiver rx{Role::kTarget, RxLimits{16384, 1u << 20}};
    TxFormat tx;
    uint16_t qid = 0;
    bool dead = false;
    std::vector<uint8_t> capsule = std::vector<uint8_t>(16384);
    iovec capsule_iov{};
    struct Pending {
        uint64_t off;  // byte offset in storage
        uint32_t len, got, r2t_end;
    };
    std::map<uint16_t, Pending> writes;

    Conn(FakeTarget* tt, int f) : t(tt), fd(f) {}

    void send_all(const iovec* iov, int n) {
        std::vector<iovec> v(iov, iov + n);
        size_t i = 0;
        while (i < v.size() && !dead) {
            ssize_t w = ::writev(fd, v.data() + i, int(v.size() - i));
            if (w <= 0) {
                dead = true;
                return;
            }
            size_t left = size_t(w);
            while (i < v.size() && left >= v[i].iov_len) left -= v[i++].iov_len;
            if (i < v.size()) {
                v[i].iov_base = static_cast<uint8_t*>(v[i].iov_base) + left;
                v[i].iov_len -= left;
            }
        }
    }
    void send_hdr(const uint8_t* h, size_t n, const void* data = nullptr, uint32_t dlen = 0) {
        iovec v[3] = {{const_cast<uint8_t*>(h), n}, {const_cast<void*>(data), dlen}, {}};
        int cnt = dlen ? 2 : 1;
        uint8_t dg[4];
        if (dlen && sends_data_digest(tx, dlen)) {
            nvmf::store_digest(dg, data_digest(&v[1], 1));
            v[2] = {dg, 4};
            cnt = 3;
        }
        send_all(v, cnt);
    }
    void resp(uint16_t cid, nv::Status st, uint32_t dw0 = 0, uint32_t dw1 = 0) {
        nv::CompletionQueueEntry c{};
        c.cid = cid;
        c.status = st;
        c.dw0 = dw0;
        c.dw1 = dw1;
        c.sqid = qid;
        uint8_t h[kMaxTxHeaderBytes];
        send_hdr(h, build_capsule_resp(h, c, tx));
    }
    void c2h(uint16_t cid, const uint8_t* data, uint32_t len) {
        const uint32_t chunk = std::max<uint32_t>(t->o_.c2h_chunk, 4);
        for (uint32_t off = 0; off < len; off += chunk) {
            DataPduParams p;
            p.cccid = cid;
            p.datao = off;
            p.datal = std::min(chunk, len - off);
            p.last = off + p.datal == len;
            p.success = p.last && t->o_.c2h_success;
            uint8_t h[kMaxTxHeaderBytes];
            send_hdr(h, build_c2h_data(h, p, tx), data + off, p.datal);
        }
        if (!t->o_.c2h_success || len == 0) resp(cid, nv::Status::success());
    }
    void r2t(uint16_t cid, Pending& p) {
        const uint32_t chunk = t->o_.r2t_chunk ? t->o_.r2t_chunk : p.len;
        R2TParams r;
        r.cccid = cid;
        r.ttag = cid;
        r.r2to = p.got;
        r.r2tl = std::min(chunk, p.len - p.got);
        p.r2t_end = p.got + r.r2tl;
        ++t->r2ts;
        uint8_t h[kMaxTxHeaderBytes];
        send_hdr(h, build_r2t(h, r, tx));
    }

    DataDestination on_header(const PduHeader& h) override {
        if (h.type() == PduType::kCapsuleCmd) {
            capsule_iov = {capsule.data(), capsule.size()};
            return DataDestination::into(&capsule_iov, 1);
        }
        if (h.type() == PduType::kH2CData) {
            const auto& d = h.as<DataPdu>();
            auto it = writes.find(d.cccid);
            if (it == writes.end() || d.datao != it->second.got ||
                d.datao + d.datal > it->second.r2t_end || d.datal > t->o_.maxh2cdata)
                return DataDestination::fail(Fes::kDataOutOfRange);
            capsule_iov = {t->storage_.data() + it->second.off + d.datao, d.datal};
            return DataDestination::into(&capsule_iov, 1);
        }
        return DataDestination::discard();
    }

    AfterPdu on_pdu_complete(const PduHeader& h, bool digest_ok) override {
        if (!digest_ok) {
            dead = true;
            return AfterPdu::kPause;
        }
        switch (h.type()) {
            case PduType::kICReq: {
                const auto& ic = h.as<ICReqPdu>();
                const bool hd = ic.dgst & kIcDigestHeader, dd = ic.dgst & kIcDigestData;
                if (hd) t->saw_hdgst = true;
                if (dd) t->saw_ddgst = true;
                ICRespParams p;
                p.hdgst = hd;
                p.ddgst = dd;
                p.maxh2cdata = t->o_.maxh2cdata;
                uint8_t b[kMaxTxHeaderBytes];
                send_hdr(b, build_icresp(b, p));
                rx.set_negotiated(Negotiated{hd, dd, 0});
                tx = TxFormat{hd, dd, 0};
                break;
            }
            case PduType::kCapsuleCmd:
                command(h.as<CapsuleCmdPdu>().sqe, h.data_length());
                break;
            case PduType::kH2CData: {
                const auto& d = h.as<DataPdu>();
                auto& p = writes[d.cccid];
                p.got += d.datal;
                ++t->h2c_pdus;
                if (p.got == p.len) {
                    writes.erase(d.cccid);
                    resp(d.cccid, nv::Status::success());
                } else if (p.got == p.r2t_end) {
                    r2t(d.cccid, p);
                }
                break;
            }
            case PduType::kH2CTermReq:
                dead = true;
                return AfterPdu::kPause;
            default:
                break;
        }
        return AfterPdu::kContinue;
    }

    void admin(const nv::SubmissionQueueEntry& s) {
        const uint16_t cid = s.cid;
        uint8_t page[4096] = {};
        switch (s.opcode) {
            case nv::admin_opc::kIdentify: {
                const uint8_t cns = s.cdw10 & 0xFF;
                if (cns == nv::cns::kController) {
                    auto* c = reinterpret_cast<nv::IdentifyController*>(page);
                    std::memcpy(c->mn, "fake nvme target", 16);
                    std::memcpy(c->sn, "FAKE0001", 8);
                    c->mdts = t->o_.mdts;
                    c->cntlid = cntlid;
                    c->ver = nv::make_version(1, 3);
                    c->cntrltype = discovery ? nv::kCntrlTypeDiscovery : nv::kCntrlTypeIo;
                    c->sqes = 0x66;
                    c->cqes = 0x44;
                    c->maxcmd = 128;
                    c->nn = 1;
                    c->oncs = nv::kOncsDatasetManagement | nv::kOncsWriteZeroes;
                    c->vwc = 1;
                    c->sgls = 1;
                    c->kas = 1;
                    c->ioccsz = (64 + t->o_.incapsule) / 16;
                    c->iorcsz = 1;
                    std::strncpy(c->subnqn, t->o_.subnqn.c_str(), sizeof c->subnqn - 1);
                } else if (cns == nv::cns::kActiveNamespaceList) {
                    if (s.nsid < 1) reinterpret_cast<uint32_t*>(page)[0] = 1;
                } else if (cns == nv::cns::kNamespace && s.nsid == 1) {
                    auto* n = reinterpret_cast<nv::IdentifyNamespace*>(page);
                    n->nsze = n->ncap = n->nuse = t->o_.num_blocks;
                    n->lbaf[0].lbads = 9;
                    for (int i = 0; i < 16; ++i) n->nguid[i] = uint8_t(0xA0 + i);
                } else if (cns == nv::cns::kNamespaceIdDescriptorList && s.nsid == 1) {
                    page[0] = nv::nidt::kUuid;
                    page[1] = 16;
                    for (int i = 0; i < 16; ++i) page[4 + i] = uint8_t(0x10 + i);
                } else if (cns != nv::cns::kNamespace) {
                    return resp(cid, nv::Status::generic(nv::sc::kInvalidField, true));
                }
                return c2h(cid, page, 4096);
            }
            case nv::admin_opc::kSetFeatures:
                if ((s.cdw10 & 0xFF) == nv::feature::kNumberOfQueues)
                    return resp(cid, nv::Status::success(), 7 | (7u << 16));  // 8 queues
                return resp(cid, nv::Status::generic(nv::sc::kInvalidField, true));
            case nv::admin_opc::kKeepAlive:
                return resp(cid, nv::Status::success());
            case nv::admin_opc::kGetLogPage: {
                if ((s.cdw10 & 0xFF) != nv::log_page::kDiscovery)
                    return resp(cid, nv::Status::generic(nv::sc::kInvalidField, true));
                std::vector<uint8_t> log(2048, 0);
                auto* h = reinterpret_cast<nv::DiscoveryLogHeader*>(log.data());
                h->genctr = 3;
                h->numrec = 1;
                auto* e = reinterpret_cast<nv::DiscoveryLogEntry*>(log.data() + 1024);
                e->trtype = nv::trtype::kTcp;
                e->adrfam = nv::adrfam::kIpv4;
                e->subtype = nv::subtype::kNvm;
                e->cntlid = 0xFFFF;
                std::memset(e->trsvcid, ' ', sizeof e->trsvcid);
                std::memset(e->traddr, ' ', sizeof e->traddr);
                const std::string port = std::to_string(t->port_);
                std::memcpy(e->trsvcid, port.data(), port.size());
                std::memcpy(e->traddr, "127.0.0.1", 9);
                std::strncpy(e->subnqn, t->o_.subnqn.c_str(), sizeof e->subnqn - 1);
                const uint64_t off = (uint64_t(s.cdw13) << 32) | s.cdw12;
                const uint32_t len = ((s.cdw10 >> 16) | ((s.cdw11 & 0xFFFF) << 16)) * 4 + 4;
                std::vector<uint8_t> out(len, 0);
                if (off < log.size())
                    std::memcpy(out.data(), log.data() + off,
                                std::min<size_t>(len, log.size() - off));
                return c2h(cid, out.data(), len);
            }
            default:
                return resp(cid, nv::Status::generic(nv::sc::kInvalidOpcode, true));
        }
    }

    void fabrics(const nv::SubmissionQueueEntry& s, uint32_t dlen) {
        const uint8_t fct = s.fabrics_type();
        if (fct == nv::fctype::kConnect) {
            nv::ConnectCommand c;
            std::memcpy(&c, &s, sizeof c);
            nv::ConnectData d;
            std::memcpy(&d, capsule.data(), std::min<size_t>(dlen, sizeof d));
            qid = c.qid;
            discovery = std::string(d.subnqn) == nv::kDiscoveryNqn;
            if (!discovery && std::string(d.subnqn) != t->o_.subnqn)
                return resp(s.cid,
                            nv::Status::command_specific(nv::sc_cmd::kConnectInvalidParameters));
            {
                std::lock_guard<std::mutex> g(t->mu_);
                cntlid = qid == 0 ? t->next_cntlid_++ : d.cntlid;
            }
            ++t->connects;
            return resp(s.cid, nv::Status::success(), cntlid);
        }
        nv::PropertyGetCommand p;
        std::memcpy(&p, &s, sizeof p);
        if (fct == nv::fctype::kPropertyGet) {
            uint64_t v = 0;
            if (p.offset == nv::prop::kCap) v = nv::cap::make(127, 2);
            if (p.offset == nv::prop::kVs) v = nv::make_version(1, 3);
            if (p.offset == nv::prop::kCc) v = t->cc_;
            if (p.offset == nv::prop::kCsts)
                v = nv::csts::make(nv::cc::en(t->cc_), false,
                                   nv::cc::shn(t->cc_) ? nv::csts::kShstComplete : 0);
            return resp(s.cid, nv::Status::success(), uint32_t(v), uint32_t(v >> 32));
        }
        if (fct == nv::fctype::kPropertySet) {
            nv::PropertySetCommand ps;
            std::memcpy(&ps, &s, sizeof ps);
            if (ps.offset == nv::prop::kCc) {
                t->cc_ = uint32_t(ps.value);
                if (nv::cc::shn(t->cc_)) ++t->shutdowns;
            }
            return resp(s.cid, nv::Status::success());
        }
        resp(s.cid, nv::Status::generic(nv::sc::kInvalidOpcode, true));
    }

    void io(const nv::SubmissionQueueEntry& s, uint32_t dlen) {
        ++t->io_commands;
        if (t->hold_io) return;
        const uint64_t slba = nv::rw_slba(s);
        const uint32_t nlb = nv::rw_nlb(s);
        auto in_range = [&] { return s.nsid == 1 && slba + nlb <= t->o_.num_blocks; };
        uint8_t* base = t->storage_.data() + slba * 512;
        switch (s.opcode) {
            case nv::nvm_opc::kRead:
                if (!in_range()) return resp(s.cid, nv::Status::generic(nv::sc::kLbaOutOfRange));
                return c2h(s.cid, base, nlb * 512);
            case nv::nvm_opc::kWrite: {
                if (!in_range()) return resp(s.cid, nv::Status::generic(nv::sc::kLbaOutOfRange));
                if (s.sgl1.id == nv::kSglIdInCapsuleOffset) {
                    ++t->incapsule_writes;
                    std::memcpy(base, capsule.data(), std::min<uint32_t>(dlen, nlb * 512));
                    return resp(s.cid, nv::Status::success());
                }
                Pending p{slba * 512, nlb * 512, 0, 0};
                writes[s.cid] = p;
                return r2t(s.cid, writes[s.cid]);
            }
            case nv::nvm_opc::kWriteZeroes:
                if (!in_range()) return resp(s.cid, nv::Status::generic(nv::sc::kLbaOutOfRange));
                std::memset(base, 0, nlb * 512);
                return resp(s.cid, nv::Status::success());
            case nv::nvm_opc::kDatasetManagement: {
                const uint32_t nr = (s.cdw10 & 0xFF) + 1;
                for (uint32_t i = 0; i < nr && (i + 1) * 16 <= dlen; ++i) {
                    uint32_t n;
                    uint64_t lba;
                    std::memcpy(&n, capsule.data() + i * 16 + 4, 4);
                    std::memcpy(&lba, capsule.data() + i * 16 + 8, 8);
                    if (lba + n <= t->o_.num_blocks)
                        std::memset(t->storage_.data() + lba * 512, 0, size_t(n) * 512);
                }
                return resp(s.cid, nv::Status::success());
            }
            case nv::nvm_opc::kFlush:
                return resp(s.cid, nv::Status::success());
            default:
                return resp(s.cid, nv::Status::generic(nv::sc::kInvalidOpcode, true));
        }
    }

    void command(const nv::SubmissionQueueEntry& s, uint32_t dlen) {
        if (s.opcode == nv::admin_opc::kFabrics) return fabrics(s, dlen);
        if (qid == 0) return admin(s);
        io(s, dlen);
    }

    uint16_t cntlid = 0;
    bool discovery = false;
};

FakeTarget::FakeTarget(FakeTargetOptions o) : o_(std::move(o)), storage_(o_.num_blocks * 512) {}

FakeTarget::~FakeTarget() {
    stop();
}

bool FakeTarget::start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
        ::close(listen_fd_);
        listen_fd_ = -1;
        return false;
    }
    socklen_t l = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &l);
    port_ = ntohs(a.sin_port);
    running_ = true;
    acceptor_ = std::thread([this] { accept_loop(); });
    return true;
}

void FakeTarget::stop() {
    if (!running_.exchange(false)) return;
    acceptor_.join();
    ::close(listen_fd_);
    listen_fd_ = -1;
    {
        std::lock_guard<std::mutex> g(mu_);
        for (Conn* c : conns_) ::shutdown(c->fd, SHUT_RDWR);
    }
    for (auto& th : threads_) th.join();
    threads_.clear();
    std::lock_guard<std::mutex> g(mu_);
    for (Conn* c : conns_) {
        ::close(c->fd);
        delete c;
    }
    conns_.clear();
    cc_ = 0;
}

void FakeTarget::accept_loop() {
    while (running_) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto* c = new Conn(this, fd);
        std::lock_guard<std::mutex> g(mu_);
        conns_.push_back(c);
        threads_.emplace_back([this, c] { serve(c); });
    }
}

void FakeTarget::serve(Conn* c) {
    std::vector<uint8_t> buf(65536);
    while (!c->dead) {
        ssize_t n = ::recv(c->fd, buf.data(), buf.size(), 0);
        if (n <= 0) break;
        size_t off = 0;
        while (off < size_t(n) && !c->dead) {
            off += c->rx.feed(buf.data() + off, size_t(n) - off, *c);
            if (c->rx.failed()) c->dead = true;
        }
    }
    ::shutdown(c->fd, SHUT_RDWR);
}

std::vector<uint8_t> FakeTarget::read_blocks(uint64_t lba, uint32_t n) {
    return std::vector<uint8_t>(storage_.begin() + long(lba * 512),
                                storage_.begin() + long((lba + n) * 512));
}

}  // namespace nocstor::test
