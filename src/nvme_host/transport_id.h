// Where an NVMe-oF controller lives, in SPDK's transport-ID form:
//   "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:nqn... hostnqn:... ns:1"
// Keys are case-insensitive, separated by whitespace, each "key:value" or "key=value" (split at
// the first ':' or '=', so "traddr:::1" is the IPv6 address ::1).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nocstor::nvme_host {

enum class AddressFamily : uint8_t { kIpv4 = 1, kIpv6 = 2 };

struct TransportId {
    std::string trtype = "TCP";
    AddressFamily adrfam = AddressFamily::kIpv4;
    std::string traddr;
    std::string trsvcid = "4420";
    std::string subnqn;           // empty: the discovery NQN
    std::string hostnqn;          // empty: generated
    std::vector<uint32_t> nsids;  // "ns:" keys (perf only); empty = all
};

// Parses the SPDK syntax. False with *err naming the bad key/value.
bool parse_transport_id(const std::string& text, TransportId* out, std::string* err);
// "IPv4" / "IPv6" (case-insensitive). False on anything else.
bool parse_adrfam(const std::string& text, AddressFamily* out);
const char* adrfam_name(AddressFamily f);
std::string format_transport_id(const TransportId& t);

// "nqn.2014-08.org.nvmexpress:uuid:<uuid>" with a random UUID, and that UUID's bytes.
std::string generate_host_nqn(uint8_t hostid_out[16]);
// The hostid for a given host NQN: its UUID when it has the uuid form, else random.
void hostid_for_nqn(const std::string& hostnqn, uint8_t hostid_out[16]);
// Basic NQN syntax check (length, "nqn." prefix), as targets require.
bool valid_nqn(const std::string& nqn, std::string* err);

}  // namespace nocstor::nvme_host
