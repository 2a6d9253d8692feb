#include "modules/raid/raid_parity.h"

#include "modules/raid/raid_layout.h"

#include <isa-l/erasure_code.h>
#include <isa-l/raid.h>

#include <cstring>

namespace nocstor::raid {

uint8_t Parity::gexp(uint32_t d) {
    uint8_t v = 1;
    for (uint32_t i = 0; i < d; ++i) v = gf_mul(v, 2);
    return v;
}

Parity::Parity(uint32_t k, uint32_t p) : k_(k), p_(p) {
    uint8_t matrix[2 * kMaxMembers];
    for (uint32_t d = 0; d < k; ++d) {
        matrix[d] = 1;
        matrix[k + d] = gpow_[d] = gexp(d);
    }
    ec_init_tables(int(k), int(p), matrix, update_tables_);
}

void Parity::generate(size_t len, uint8_t* const* data, uint8_t* P, uint8_t* Q) const {
    void* v[kMaxMembers + 2];
    for (uint32_t d = 0; d < k_; ++d) v[d] = data[d];
    if (p_ == 2 && P && Q && k_ >= 2) {
        v[k_] = P;
        v[k_ + 1] = Q;
        pq_gen(int(k_ + 2), int(len), v);
        return;
    }
    if (P) {
        if (k_ == 1) {
            std::memcpy(P, data[0], len);
        } else {
            v[k_] = P;
            xor_gen(int(k_ + 1), int(len), v);
        }
    }
    if (p_ == 2 && Q) {  // Q alone (P missing) or a single data strip
        std::memset(Q, 0, len);
        for (uint32_t d = 0; d < k_; ++d) update(len, d, data[d], nullptr, Q);
    }
}

void Parity::update(size_t len, uint32_t d, const uint8_t* src, uint8_t* P, uint8_t* Q) const {
    if (p_ == 1 || !Q) {
        if (!P) return;
        void* v[3] = {const_cast<uint8_t*>(src), P, P};
        xor_gen(3, int(len), v);  // P = src ^ P
        return;
    }
    if (!P) {
        // Q row only: its tables are the second row block of update_tables_.
        uint8_t* out[1] = {Q};
        ec_encode_data_update(int(len), int(k_), 1, int(d),
                              const_cast<uint8_t*>(update_tables_) + 32 * k_,
                              const_cast<uint8_t*>(src), out);
        return;
    }
    uint8_t* out[2] = {P, Q};
    ec_encode_data_update(int(len), int(k_), 2, int(d), const_cast<uint8_t*>(update_tables_),
                          const_cast<uint8_t*>(src), out);
}

bool Parity::reconstruct(size_t len, uint8_t* const* data, const uint32_t* missing,
                         uint32_t n_missing, const uint8_t* P, const uint8_t* Q) const {
    if (n_missing == 0) return true;
    if (n_missing > p_) return false;
    // Equations available: P (coefficients 1) and Q (coefficients g^d). Use the first n_missing
    // of those whose parity is present.
    struct Row {
        const uint8_t* parity;
        bool is_q;
    } rows[2];
    uint32_t n_rows = 0;
    if (P) rows[n_rows++] = {P, false};
    if (p_ == 2 && Q && n_rows < n_missing) rows[n_rows++] = {Q, true};
    if (n_rows < n_missing) return false;
    auto coef = [](bool is_q, uint32_t d) -> uint8_t { return is_q ? gexp(d) : 1; };

    // A = coefficients of the missing data in the chosen rows; inv = A^-1.
    uint8_t a[4], inv[4];
    for (uint32_t r = 0; r < n_missing; ++r)
        for (uint32_t c = 0; c < n_missing; ++c)
            a[r * n_missing + c] = coef(rows[r].is_q, missing[c]);
    if (gf_invert_matrix(a, inv, int(n_missing)) != 0) return false;

    // Sources: the present data strips, then the chosen parities.
    // missing_m = sum_r inv[m][r] * (parity_r + sum_{i present} coef_r(i) * D_i)
    uint8_t* src[kMaxMembers + 2];
    uint8_t matrix[2 * (kMaxMembers + 2)];
    uint32_t n_src = 0;
    uint32_t present[kMaxMembers];
    for (uint32_t d = 0; d < k_; ++d) {
        bool is_missing = false;
        for (uint32_t m = 0; m < n_missing; ++m) is_missing = is_missing || missing[m] == d;
        if (!is_missing) present[n_src++] = d;
    }
    const uint32_t n_data = n_src;
    for (uint32_t i = 0; i < n_data; ++i) src[i] = data[present[i]];
    for (uint32_t r = 0; r < n_missing; ++r) src[n_data + r] = const_cast<uint8_t*>(rows[r].parity);
    n_src = n_data + n_missing;
    for (uint32_t m = 0; m < n_missing; ++m) {
        uint8_t* row = matrix + m * n_src;
        for (uint32_t i = 0; i < n_data; ++i) {
            uint8_t v = 0;
            for (uint32_t r = 0; r < n_missing; ++r)
                v ^= gf_mul(inv[m * n_missing + r], coef(rows[r].is_q, present[i]));
            row[i] = v;
        }
        for (uint32_t r = 0; r < n_missing; ++r) row[n_data + r] = inv[m * n_missing + r];
    }
    uint8_t tables[32 * (kMaxMembers + 2) * 2];
    ec_init_tables(int(n_src), int(n_missing), matrix, tables);
    uint8_t* out[2];
    for (uint32_t m = 0; m < n_missing; ++m) out[m] = data[missing[m]];
    ec_encode_data(int(len), int(n_src), int(n_missing), tables, src, out);
    return true;
}

bool Parity::check(size_t len, uint8_t* const* data, const uint8_t* P, const uint8_t* Q) const {
    void* v[kMaxMembers + 2];
    for (uint32_t d = 0; d < k_; ++d) v[d] = data[d];
    if (p_ == 2 && k_ >= 2) {
        v[k_] = const_cast<uint8_t*>(P);
        v[k_ + 1] = const_cast<uint8_t*>(Q);
        return pq_check(int(k_ + 2), int(len), v) == 0;
    }
    if (k_ == 1)
        return std::memcmp(data[0], P, len) == 0 && (p_ == 1 || std::memcmp(P, Q, len) == 0);
    v[k_] = const_cast<uint8_t*>(P);
    return xor_check(int(k_ + 1), int(len), v) == 0;
}

Parity::RowFault Parity::locate(size_t len, const uint8_t* psyn, const uint8_t* qsyn) const {
    RowFault row;
    for (size_t i = 0; i < len; ++i) {
        const uint8_t ps = psyn[i], qs = qsyn[i];
        if (!ps && !qs) continue;
        RowFault byte;
        if (!qs) {
            byte.kind = RowFault::P;
        } else if (!ps) {
            byte.kind = RowFault::Q;
        } else {
            const uint8_t gz = gf_mul(qs, gf_inv(ps));
            byte.kind = RowFault::Unknown;
            for (uint32_t d = 0; d < k_; ++d) {
                if (gpow_[d] == gz) {
                    byte.kind = RowFault::Data;
                    byte.data_index = d;
                    break;
                }
            }
        }
        if (byte.kind == RowFault::Unknown) return byte;
        if (row.kind == RowFault::None)
            row = byte;
        else if (row.kind != byte.kind || row.data_index != byte.data_index)
            return {RowFault::Unknown, 0};
    }
    return row;
}

}  // namespace nocstor::raid
