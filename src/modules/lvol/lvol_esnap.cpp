// External parents of lvols ("esnap" clones, SPDK's bdev_lvol_clone_bdev): a store opens each
// external bdev its lvols name read-only, once, and claims it so that nobody writes it while
// clones depend on it (the claim is shared by every store of the module that opens it). A bdev
// that is missing leaves its clones degraded: the reads that need it fail. It is opened when it
// appears (examine) and closed when it goes away (hot-remove) or no lvol needs it any more.
#include "modules/lvol/lvol.h"
#include "modules/lvol/lvstore.h"
#include "util/log.h"

#include <cerrno>
#include <cstring>

namespace nocstor::lvol {

namespace {

// Opens of external parents per bdev: the module claims a bdev once for all of them.
std::map<Bdev*, uint32_t>& esnap_claims() {
    static std::map<Bdev*, uint32_t> m;
    return m;
}

int claim(Bdev* b) {
    auto& m = esnap_claims();
    if (auto it = m.find(b); it != m.end()) return ++it->second, 0;
    if (int rc = bdev_claim(b, lvol_bdev_module())) return rc;
    m[b] = 1;
    return 0;
}

void unclaim(Bdev* b) {
    auto& m = esnap_claims();
    auto it = m.find(b);
    if (it == m.end()) return;
    if (--it->second == 0) {
        m.erase(it);
        bdev_release_claim(b);
    }
}

uint64_t next_gen() {
    static uint64_t gen = 0;
    return ++gen;
}

bool matches(const Bdev* b, const std::string& id) {
    if (b->name == id || uuid_to_string(b->uuid) == id) return true;
    for (const auto& a : b->aliases)
        if (a == id) return true;
    return false;
}

// UUIDs compare in their canonical (lower-case) spelling.
std::string canonical(const std::string& id) {
    Uuid u;
    return uuid_parse(id, &u) ? uuid_to_string(u) : id;
}

}  // namespace

Bdev* find_bdev_by_id(const std::string& id) {
    Bdev* b = bdev_get_by_name(id);
    if (!b) {
        const std::string want = canonical(id);
        for (Bdev* c : bdev_list())
            if (uuid_to_string(c->uuid) == want) b = c;
    }
    return b && !b->removing() ? b : nullptr;
}

std::string esnap_id_of(const Bdev* b) {
    return b->uuid == Uuid{} ? b->name : uuid_to_string(b->uuid);
}

Esnap* Lvstore::esnap(const std::string& id, std::string* err) {
    auto& e = esnaps[id];
    if (!e) e = std::make_unique<Esnap>(id);
    if (!e->open.load(std::memory_order_acquire)) {
        std::string why;
        if (Bdev* b = find_bdev_by_id(id))
            esnap_attach(e.get(), b, &why);
        else
            why = "no bdev with the name or UUID " + id;
        if (err) *err = why;
    }
    return e.get();
}

bool Lvstore::esnap_attach(Esnap* e, Bdev* b, std::string* err) {
    if (e->open.load(std::memory_order_acquire)) return true;
    if (b->block_size != base()->block_size) {
        *err = "bdev " + b->name + " has " + std::to_string(b->block_size) +
               "-byte blocks, lvstore " + sb.name + " " + std::to_string(base()->block_size) +
               "-byte ones: an external parent needs the same block size";
        return false;
    }
    if (b == base() ||
        (b->module == lvol_bdev_module() && static_cast<LvolBdev*>(b)->lvs == this)) {
        *err = "bdev " + b->name + " belongs to lvstore " + sb.name +
               ": clone its snapshots with bdev_lvol_clone instead";
        return false;
    }
    if (claim(b)) {
        *err = "bdev " + b->name + " is claimed by module " +
               (b->claimed_by() ? b->claimed_by()->name() : std::string("?")) +
               ": it cannot be an external parent";
        return false;
    }
    const uint64_t gen = next_gen();
    Lvstore* self = this;
    auto on_event = [self, e, gen](BdevEvent ev, Bdev* bdev) {
        EsnapOpen* o = e->open.load(std::memory_order_acquire);
        if (!o || o->gen != gen) return;
        if (ev == BdevEvent::Resize) {
            // Grown: the clones' unwritten clusters past the old end read its data from now on,
            // as they would after a restart. Only growth is followed: the bdev layer refuses to
            // shrink an open bdev, and were one to shrink, reads past its new end must fail at
            // the bdev rather than turn into zeros.
            const uint64_t was = o->blocks();
            if (bdev->num_blocks <= was) return;
            o->num_blocks.store(bdev->num_blocks, std::memory_order_release);
            NOC_INFO("lvol",
                     "lvstore {}: external parent {} ({}) resized from {} to {} blocks: its "
                     "clones read it up to the new end",
                     self->sb.name, bdev->name, e->id, was, bdev->num_blocks);
            return;
        }
        if (ev != BdevEvent::Remove) return;
        NOC_WARN("lvol",
                 "lvstore {}: external parent {} ({}) is going away: its clones are degraded "
                 "until it is back",
                 self->sb.name, bdev->name, e->id);
        self->esnap_detach(e, [] {});
    };
    BdevDesc* desc = nullptr;
    if (int rc = bdev_open(b->name, false, on_event, &desc)) {
        unclaim(b);
        *err = "cannot open bdev " + b->name + ": " + std::strerror(-rc);
        return false;
    }
    e->open.store(new EsnapOpen{desc, gen, b->num_blocks}, std::memory_order_release);
    NOC_INFO("lvol", "lvstore {}: external parent {} opened ({})", sb.name, e->id, b->name);
    return true;
}

void Lvstore::esnap_detach(Esnap* e, std::function<void()> done) {
    EsnapOpen* o = e->open.exchange(nullptr, std::memory_order_acq_rel);
    if (!o) {
        // Not open; a close under way (a hot-remove) is waited for all the same.
        if (e->closing)
            e->on_closed.push_back(std::move(done));
        else
            done();
        return;
    }
    ++e->closing;
    // From now on no new read takes it. Each channel puts its channel to it once its reads of
    // it are done; the fills reading it finish; then it is closed.
    struct Group {
        uint32_t pending = 1;
        std::function<void()> done;
    };
    auto g = std::make_shared<Group>();
    g->done = [e, o, done = std::move(done)] {
        auto close = [e, o, done] {
            Bdev* b = o->desc->bdev();
            unclaim(b);
            bdev_close(o->desc);  // may destroy b (it is being removed)
            delete o;
            // Nothing touches e after the callbacks: the last one may close the store (and
            // destroy e with it).
            std::vector<std::function<void()>> waiting;
            if (--e->closing == 0) {
                waiting = std::move(e->on_closed);
                e->on_closed.clear();
            }
            done();
            for (auto& f : waiting) f();
        };
        if (e->users)
            e->on_idle.push_back(close);
        else
            close();
    };
    auto one = [g] {
        if (--g->pending == 0) g->done();
    };
    for (auto& [id, b] : bdevs) {
        ++g->pending;
        b->drop_esnap_channel(o->gen, one);
    }
    one();
}

bool Lvstore::esnap_in_use(const std::string& id) const {
    for (const auto& [lid, l] : state.lvols())
        if (l.esnap == id) return true;
    return false;
}

void Lvstore::esnap_release_unused(std::function<void()> done) {
    for (auto& [id, e] : esnaps) {
        if (!e->open.load(std::memory_order_acquire) || esnap_in_use(id)) continue;
        NOC_INFO("lvol", "lvstore {}: external parent {} is no lvol's parent any more: closed",
                 sb.name, id);
        // One at a time: the map does not change meanwhile (handles live as long as the store).
        return esnap_detach(e.get(), [this, done = std::move(done)]() mutable {
            esnap_release_unused(std::move(done));
        });
    }
    done();
}

std::string Lvstore::chain_esnap(uint32_t id) const {
    const LvolMeta* l = state.lvol(id);
    for (int guard = 0; l && l->parent != kNoLvol && guard < 1 << 20; ++guard)
        l = state.lvol(l->parent);
    return l ? l->esnap : std::string();
}

bool Lvstore::degraded(uint32_t id) const {
    const std::string e = chain_esnap(id);
    if (e.empty()) return false;
    auto it = esnaps.find(e);
    return it == esnaps.end() || !it->second->open.load(std::memory_order_acquire);
}

bool esnap_examine(Bdev* b) {
    bool any = false;
    for (Lvstore* s : lvstores()) {
        if (s->unloading) continue;
        for (auto& [id, e] : s->esnaps) {
            if (e->open.load(std::memory_order_acquire) || !matches(b, id) || !s->esnap_in_use(id))
                continue;
            std::string why;
            if (s->esnap_attach(e.get(), b, &why)) {
                NOC_INFO("lvol", "lvstore {}: external parent {} appeared: its clones are healthy",
                         s->sb.name, id);
                any = true;
            } else {
                NOC_ERROR("lvol", "lvstore {}: bdev {} is external parent {} but {}", s->sb.name,
                          b->name, id, why);
            }
        }
    }
    return any;
}

namespace {

void close_each(Lvstore* s, std::vector<Esnap*> all, size_t i, std::function<void()> done) {
    if (i == all.size()) return done();
    Esnap* e = all[i];
    s->esnap_detach(e, [s, all = std::move(all), i, done = std::move(done)]() mutable {
        close_each(s, std::move(all), i + 1, std::move(done));
    });
}

}  // namespace

void esnap_close_all(Lvstore* s, std::function<void()> done) {
    // Every handle, open or not: a close under way (hot-remove) is waited for too.
    std::vector<Esnap*> all;
    for (auto& [id, e] : s->esnaps) all.push_back(e.get());
    close_each(s, std::move(all), 0, std::move(done));
}

}  // namespace nocstor::lvol
