#include "control/connection_limits.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>

namespace nocstor::control {
namespace {

struct FakeConn {
    ConnectionClock c;
    bool busy = false;
    bool unsent = false;
    ConnectionClock& clock() { return c; }
    const ConnectionClock& clock() const { return c; }
    bool handling() const { return busy; }
    bool output_pending() const { return unsent; }
};

constexpr std::uint64_t kMs = 1'000'000;

std::unique_ptr<FakeConn> conn(std::string peer, std::uint64_t last, std::uint64_t started = 0,
                               bool busy = false) {
    auto c = std::make_unique<FakeConn>();
    c->c.peer = std::move(peer);
    c->c.last_activity_ns = last;
    c->c.request_started_ns = started;
    c->busy = busy;
    return c;
}

TEST(ConnectionLimits, Deadlines) {
    const ConnectionLimits l{.max_connections = 4,
                             .max_per_peer = 0,
                             .idle_timeout_ms = 1000,
                             .request_timeout_ms = 100};
    auto idle = conn("a", 0);
    EXPECT_EQ(passed_deadline(*idle, l, 999 * kMs), Deadline::kNone);
    EXPECT_EQ(passed_deadline(*idle, l, 1001 * kMs), Deadline::kIdle);
    auto partial = conn("a", 50 * kMs, 10 * kMs);  // bytes keep coming, but the request is old
    EXPECT_EQ(passed_deadline(*partial, l, 100 * kMs), Deadline::kNone);
    EXPECT_EQ(passed_deadline(*partial, l, 111 * kMs), Deadline::kRequest);
    auto busy = conn("a", 0, 0, true);  // a request being answered never times out
    EXPECT_EQ(passed_deadline(*busy, l, 1'000'000 * kMs), Deadline::kNone);
    auto unread = conn("a", 0);
    unread->unsent = true;  // the client does not read its answer
    EXPECT_EQ(passed_deadline(*unread, l, 101 * kMs), Deadline::kRequest);
    const ConnectionLimits none{.max_connections = 4};
    EXPECT_EQ(passed_deadline(*idle, none, ~std::uint64_t{0}), Deadline::kNone);
    EXPECT_EQ(passed_deadline(*partial, none, ~std::uint64_t{0}), Deadline::kNone);
}

TEST(ConnectionLimits, ClockTracksIncompleteRequests) {
    ConnectionClock c;
    c.on_input(10, true);
    c.on_input(20, true);
    EXPECT_EQ(c.request_started_ns, 10u);
    EXPECT_EQ(c.last_activity_ns, 20u);
    c.on_input(30, false);
    EXPECT_EQ(c.request_started_ns, 0u);
}

TEST(ConnectionLimits, AdmissionEvictsLongestIdleThenSlowestNeverBusy) {
    const ConnectionLimits l{.max_connections = 3};
    std::map<std::uint64_t, std::unique_ptr<FakeConn>> m;
    m[1] = conn("a", 30);
    m[2] = conn("a", 10);
    EXPECT_EQ(admission_victim(m, "b", l), 0u) << "room left";
    m[3] = conn("a", 20);
    EXPECT_EQ(admission_victim(m, "b", l), 2u) << "idle longest";
    m[1]->busy = m[2]->busy = m[3]->busy = true;
    EXPECT_EQ(admission_victim(m, "b", l), kRefuse) << "all busy";
    m[3] = conn("a", 90, 5);  // an incomplete request since t=5
    m[2] = conn("a", 90, 50);
    m[2]->busy = false;
    EXPECT_EQ(admission_victim(m, "b", l), 3u) << "the slow sender waiting longest";
}

TEST(ConnectionLimits, PerPeerCapEvictsOnlyThatPeer) {
    const ConnectionLimits l{.max_connections = 10, .max_per_peer = 2};
    std::map<std::uint64_t, std::unique_ptr<FakeConn>> m;
    m[1] = conn("x", 1);  // another peer, idle longest of all
    m[2] = conn("p", 5);
    EXPECT_EQ(admission_victim(m, "p", l), 0u);
    m[3] = conn("p", 3);
    EXPECT_EQ(admission_victim(m, "p", l), 3u);
    EXPECT_EQ(admission_victim(m, "q", l), 0u) << "other peers are not capped by p";
    m[2]->busy = m[3]->busy = true;
    EXPECT_EQ(admission_victim(m, "p", l), kRefuse);
    EXPECT_EQ(admission_victim(m, "", l), 0u) << "no per-peer cap without an address";
}

}  // namespace
}  // namespace nocstor::control
