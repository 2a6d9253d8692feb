// Limits shared by the management servers (JSON-RPC, HTTP) so that idle or slow clients can never
// lock management out: a cap on connections (and on connections per peer address), an idle
// deadline, and a deadline for a request to arrive completely once its first byte came.
//
// When a new connection finds the server full, the connection that has been idle longest is
// closed to make room (of the same peer when that peer is over its own cap); only when every
// connection is busy is the new one refused. A request being handled never times out: handlers
// may take long (attaching a remote controller), and the client is waiting for its answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace nocstor::control {

struct ConnectionLimits {
    std::size_t max_connections = 64;
    std::size_t max_per_peer = 0;          // 0: no per-peer cap
    std::uint64_t idle_timeout_ms = 0;     // 0: none. Nothing received, nothing in flight.
    std::uint64_t request_timeout_ms = 0;  // 0: none. First byte of a request to its last.
};

// What happened to connections, for /metrics (the server's thread only).
struct ConnectionCounters {
    std::uint64_t accepted = 0;
    std::uint64_t refused = 0;  // server full of busy connections
    std::uint64_t evicted = 0;  // idle, closed to make room for a new one
    std::uint64_t idle_timeouts = 0;
    std::uint64_t request_timeouts = 0;  // a request did not arrive completely in time
};

// Timing state each server connection keeps.
struct ConnectionClock {
    std::string peer;                      // address without port; "" for Unix sockets
    std::uint64_t last_activity_ns = 0;    // last byte received or response finished
    std::uint64_t request_started_ns = 0;  // first byte of an incomplete request, 0 if none

    // Bytes arrived; `partial` tells whether an incomplete request is buffered afterwards.
    void on_input(std::uint64_t now, bool partial) {
        last_activity_ns = now;
        if (!partial)
            request_started_ns = 0;
        else if (request_started_ns == 0)
            request_started_ns = now;
    }
};

// A server connection type used with the helpers below has:
//   ConnectionClock& clock();  bool handling() const;  // a request is being answered
//   bool output_pending() const;                       // answer bytes not yet sent
// It is idle when it does none of these and holds no incomplete request.
template <class Conn>
bool connection_idle(const Conn& c) {
    return !c.handling() && !c.output_pending() && c.clock().request_started_ns == 0;
}

enum class Deadline { kNone, kIdle, kRequest };

// Which deadline, if any, a connection has passed: kRequest for a request that has not arrived
// completely, or an answer the client does not read, within request_timeout_ms (measured from
// the request's first byte, or from the last progress of the answer); kIdle after
// idle_timeout_ms of nothing at all. A request being handled has no deadline.
template <class Conn>
Deadline passed_deadline(const Conn& c, const ConnectionLimits& l, std::uint64_t now) {
    if (c.handling()) return Deadline::kNone;
    const ConnectionClock& clock = c.clock();
    const std::uint64_t request_ns = l.request_timeout_ms * 1'000'000;
    if (clock.request_started_ns != 0)
        return request_ns != 0 && now - clock.request_started_ns > request_ns ? Deadline::kRequest
                                                                              : Deadline::kNone;
    if (c.output_pending())
        return request_ns != 0 && now - clock.last_activity_ns > request_ns ? Deadline::kRequest
                                                                            : Deadline::kNone;
    const std::uint64_t idle_ns = l.idle_timeout_ms * 1'000'000;
    return idle_ns != 0 && now - clock.last_activity_ns > idle_ns ? Deadline::kIdle
                                                                  : Deadline::kNone;
}

// Admission of a new connection from `peer` into `conns` (a map id -> pointer to a connection
// as above). Returns 0 to accept as is, the id of a connection to close first, or kRefuse when
// nothing can make room. The victim is the connection idle longest, else the slow one (an
// incomplete request or an unread answer) that has waited longest, never one being answered.
inline constexpr std::uint64_t kRefuse = ~std::uint64_t{0};

template <class Map>
std::uint64_t admission_victim(const Map& conns, const std::string& peer,
                               const ConnectionLimits& l) {
    const bool per_peer = l.max_per_peer != 0 && !peer.empty();
    std::size_t same_peer = 0;
    if (per_peer) {
        for (const auto& [id, c] : conns) same_peer += c->clock().peer == peer;
    }
    const bool peer_full = per_peer && same_peer >= l.max_per_peer;
    if (!peer_full && conns.size() < l.max_connections) return 0;
    std::uint64_t idle_victim = kRefuse, slow_victim = kRefuse;
    std::uint64_t idle_since = ~std::uint64_t{0}, slow_since = ~std::uint64_t{0};
    for (const auto& [id, c] : conns) {
        if (c->handling() || (peer_full && c->clock().peer != peer)) continue;
        const ConnectionClock& clock = c->clock();
        if (connection_idle(*c)) {
            if (clock.last_activity_ns < idle_since) {
                idle_since = clock.last_activity_ns;
                idle_victim = id;
            }
        } else {
            const std::uint64_t since =
                clock.request_started_ns != 0 ? clock.request_started_ns : clock.last_activity_ns;
            if (since < slow_since) {
                slow_since = since;
                slow_victim = id;
            }
        }
    }
    return idle_victim != kRefuse ? idle_victim : slow_victim;
}

}  // namespace nocstor::control
