// The kinds of operation an owner thread runs on a lock unit (see raid_stripe.h).
#pragma once

#include <cstdint>

namespace nocstor::raid {

enum class OpKind : uint8_t {
    Write,        // raid5/6 user write
    Read,         // raid5/6 user read that needs a reconstruction
    MirrorWrite,  // raid1 user write
    Resync,       // make the parity (raid1: the other mirrors) match the data
    Scrub,        // compare, count mismatching block rows, repair on request
    Rebuild,      // write the target member's content from the others
};

}  // namespace nocstor::raid
