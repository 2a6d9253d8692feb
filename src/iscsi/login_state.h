// What a connection keeps while it logs in (dropped once the full feature phase starts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "iscsi/target_config.h"
#include "iscsi/text_params.h"

namespace nocstor::iscsi_tgt {

struct LoginState {
    enum class Chap : uint8_t { None, WaitAlgorithm, WaitResponse, Done };
    bool first = true;
    bool auth_done = false;
    bool mrdsl_declared = false;
    bool tpgt_sent = false;
    uint8_t stage = 0;  // current stage (CSG)
    uint32_t itt = 0;
    std::string partial;  // text of Login PDUs with the C bit
    TextParams seen;      // every key received (values kept for the log)
    Chap chap = Chap::None;
    uint8_t chap_id = 0;
    std::vector<uint8_t> chap_challenge;
    bool mutual = false;
    int chap_group = 0;
};

}  // namespace nocstor::iscsi_tgt
