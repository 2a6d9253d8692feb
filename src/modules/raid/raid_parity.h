// RAID5/RAID6 parity over ISA-L: P = XOR of the data strips, Q = sum of g^d * D_d over GF(2^8)
// (polynomial 0x11D, g = 2: the syndrome of Linux md and of ISA-L's pq_gen). Every buffer is
// 32-byte aligned and every length a multiple of 32 (block sizes are multiples of 512).
// No allocation: tables for updates are built once per array, those for a reconstruction on the
// stack.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nocstor::raid {

class Parity {
  public:
    // k data strips, p parity strips (1: P, 2: P and Q).
    Parity(uint32_t k, uint32_t p);

    uint32_t k() const { return k_; }
    uint32_t p() const { return p_; }

    // P (and Q) of k data buffers.
    void generate(size_t len, uint8_t* const* data, uint8_t* P, uint8_t* Q) const;
    // Adds data strip d's contribution to P (and Q): P ^= src, Q ^= g^d * src. Applied to the old
    // data and then to the new data, it turns old parity into new parity (read-modify-write).
    // Either parity may be null (its member has failed).
    void update(size_t len, uint32_t d, const uint8_t* src, uint8_t* P, uint8_t* Q) const;
    // Recomputes the data strips listed in `missing` (at most p of them, data indices) in place
    // from the other data strips and the parities that are there. `data[d]` for a missing d is the
    // output buffer. P or Q may be null when that parity is missing too; the caller makes sure
    // enough is left (missing data + missing parity <= p). False if it cannot be solved.
    bool reconstruct(size_t len, uint8_t* const* data, const uint32_t* missing, uint32_t n_missing,
                     const uint8_t* P, const uint8_t* Q) const;
    // True if P (and Q) match the data (scrub).
    bool check(size_t len, uint8_t* const* data, const uint8_t* P, const uint8_t* Q) const;

    // raid6: the single member that explains a row's syndromes Psyn = P ^ P(data) and
    // Qsyn = Q ^ Q(data). A wrong data strip z shows as Qsyn = g^z * Psyn in every byte where it
    // differs, a wrong P as Psyn alone, a wrong Q as Qsyn alone; anything else (two members
    // wrong, e.g. a write torn across several strips) is Unknown.
    struct RowFault {
        enum Kind : uint8_t { None, P, Q, Data, Unknown } kind = None;
        uint32_t data_index = 0;
    };
    RowFault locate(size_t len, const uint8_t* psyn, const uint8_t* qsyn) const;

    // g^d in GF(2^8).
    static uint8_t gexp(uint32_t d);

  private:
    uint32_t k_, p_;
    uint8_t gpow_[32];  // g^d for each data index d
    // ec tables of the parity rows [1 ... 1] and [g^0 ... g^(k-1)] for update().
    uint8_t update_tables_[32 * 32 * 2];
};

}  // namespace nocstor::raid
