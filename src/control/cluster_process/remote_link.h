// Remote bdevs towards clusters that run as child processes (--cluster-processes). The front
// end's remote bdev cannot open a child's bdev itself: it asks the child to export it
// (nocstor_remote_export over the child's JSON-RPC socket) and sends its I/O to the export id it
// gets back, over the shared NoC as in one process. When the child dies, the remote bdevs
// towards it fail their I/O at once (Namespace Not Ready) instead of at their timeout; when the
// restarted child has its bdevs again, each remote bdev asks for a new export and resumes.
#pragma once

#include "modules/remote/remote_bdev.h"

#include <functional>
#include <string>

namespace nocstor::control {

// Control thread: whether the base of a bdev_remote_create may live in a child process.
bool remote_link_possible(const remote::RemoteCreateOptions& o);
// Control thread: bdev_remote_create for a base in a child process (o.base_cluster, else each
// child in turn). Waits up to a minute for a child that is (re)starting or still loading its
// configuration; done(0, "") or done(-errno, message) on the control thread.
void remote_link_create(remote::RemoteCreateOptions o,
                        std::function<void(int rc, std::string err)> done);

// The supervisor's events (control thread).
void remote_link_peer_down(int cluster);
void remote_link_peer_started(int cluster);

}  // namespace nocstor::control
