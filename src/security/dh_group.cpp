#include "security/dh_group.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/dh.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "security/dhchap.h"

namespace nocstor::security {

namespace {

struct Group {
    const char* name;
    size_t bytes;
};
constexpr Group kGroups[] = {{"null", 0},        {"ffdhe2048", 256}, {"ffdhe3072", 384},
                             {"ffdhe4096", 512}, {"ffdhe6144", 768}, {"ffdhe8192", 1024}};

EVP_PKEY* as_pkey(void* p) {
    return static_cast<EVP_PKEY*>(p);
}

}  // namespace

size_t dh_group_bytes(uint8_t id) {
    return id < std::size(kGroups) ? kGroups[id].bytes : 0;
}

const char* dh_group_name(uint8_t id) {
    return id < std::size(kGroups) ? kGroups[id].name : "unknown";
}

std::unique_ptr<DhKeyPair> DhKeyPair::generate(uint8_t id, std::string* err) {
    if (dh_group_bytes(id) == 0) {
        *err = "not an ffdhe group";
        return nullptr;
    }
    std::unique_ptr<DhKeyPair> k(new DhKeyPair());
    k->id_ = id;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                            const_cast<char*>(kGroups[id].name), 0),
                           OSSL_PARAM_construct_end()};
    EVP_PKEY* pkey = nullptr;
    const bool ok = ctx && EVP_PKEY_keygen_init(ctx) > 0 &&
                    EVP_PKEY_CTX_set_params(ctx, params) > 0 && EVP_PKEY_generate(ctx, &pkey) > 0;
    EVP_PKEY_CTX_free(ctx);
    if (!ok) {
        *err = std::string("cannot generate a ") + kGroups[id].name + " key";
        return nullptr;
    }
    k->pkey_ = pkey;
    BIGNUM* pub = nullptr;
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, &pub) <= 0) {
        *err = "cannot read the public value";
        return nullptr;
    }
    k->pub_.resize(kGroups[id].bytes);
    const int n = BN_bn2binpad(pub, k->pub_.data(), int(k->pub_.size()));
    BN_free(pub);
    if (n < 0) {
        *err = "public value larger than the group";
        return nullptr;
    }
    return k;
}

DhKeyPair::~DhKeyPair() {
    EVP_PKEY_free(as_pkey(pkey_));
}

std::vector<uint8_t> DhKeyPair::shared_secret(std::span<const uint8_t> peer,
                                              std::string* err) const {
    const size_t bytes = dh_group_bytes(id_);
    if (peer.size() != bytes) {
        *err = "the peer's DH value has the wrong size";
        return {};
    }
    BIGNUM* pub = BN_bin2bn(peer.data(), int(peer.size()), nullptr);
    OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM* params = nullptr;
    if (pub && bld &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, kGroups[id_].name, 0) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, pub))
        params = OSSL_PARAM_BLD_to_param(bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(pub);
    EVP_PKEY* peer_key = nullptr;
    EVP_PKEY_CTX* fctx = EVP_PKEY_CTX_new_from_name(nullptr, "DH", nullptr);
    const bool built = params && fctx && EVP_PKEY_fromdata_init(fctx) > 0 &&
                       EVP_PKEY_fromdata(fctx, &peer_key, EVP_PKEY_PUBLIC_KEY, params) > 0;
    EVP_PKEY_CTX_free(fctx);
    OSSL_PARAM_free(params);
    std::vector<uint8_t> out;
    if (!built) {
        *err = "the peer's DH value is not a public key of the group";
        return out;
    }
    EVP_PKEY_CTX* dctx = EVP_PKEY_CTX_new(as_pkey(pkey_), nullptr);
    size_t len = 0;
    // derive_set_peer checks the peer's value (1 < y < p-1, in the subgroup).
    if (dctx && EVP_PKEY_derive_init(dctx) > 0 && EVP_PKEY_CTX_set_dh_pad(dctx, 1) > 0 &&
        EVP_PKEY_derive_set_peer(dctx, peer_key) > 0 && EVP_PKEY_derive(dctx, nullptr, &len) > 0) {
        out.resize(len);
        if (EVP_PKEY_derive(dctx, out.data(), &len) <= 0) {
            wipe(out);
        } else {
            out.resize(len);
        }
    }
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(peer_key);
    if (out.empty()) *err = "the peer's DH value is not a valid public key of the group";
    return out;
}

}  // namespace nocstor::security
