#include "iscsi/chap.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

namespace nocstor::iscsi_tgt {

std::vector<uint8_t> chap_response(uint8_t id, std::string_view secret,
                                   const std::vector<uint8_t>& challenge) {
    std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_md5(), nullptr);
    EVP_DigestUpdate(ctx, &id, 1);
    EVP_DigestUpdate(ctx, secret.data(), secret.size());
    EVP_DigestUpdate(ctx, challenge.data(), challenge.size());
    EVP_DigestFinal_ex(ctx, out.data(), &len);
    EVP_MD_CTX_free(ctx);
    out.resize(len);
    return out;
}

bool chap_new_challenge(uint8_t* id, std::vector<uint8_t>* challenge) {
    challenge->resize(kChapChallengeLen);
    return RAND_bytes(id, 1) == 1 && RAND_bytes(challenge->data(), int(challenge->size())) == 1;
}

bool chap_equal(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace nocstor::iscsi_tgt
