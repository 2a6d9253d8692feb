// Runs one of the built command-line tools (nocstor-raid, nocstor-lvs-check) from a test and
// captures what it prints: the tool sits beside the test binary, its stdout and stderr go
// through two files in the test's scratch folder. Shared by the unit and integration tests.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace nocstor::testing {

struct ToolRun {
    int status = -1;  // the exit status; -1 when the tool did not exit (a signal)
    std::string out, err;
    nlohmann::json js() const { return nlohmann::json::parse(out, nullptr, false); }
    bool says(const std::string& s) const {
        return out.find(s) != std::string::npos || err.find(s) != std::string::npos;
    }
};

inline std::string slurp_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// The tool `name` beside this test binary (both in the build's bin/); `fallback` when
// /proc/self/exe cannot be read.
inline std::string tool_beside_test(const std::string& name, const std::string& fallback = {}) {
    std::error_code ec;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? fallback : (self.parent_path() / name).string();
}

// Runs `tool` with `args`, its stdout and stderr into dir/tool.out and dir/tool.err, and waits
// for it.
inline ToolRun run_tool(const std::string& tool, const std::vector<std::string>& args,
                        const std::string& dir) {
    const std::string out = dir + "/tool.out", err = dir + "/tool.err";
    std::vector<std::string> argv = {tool};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = fork();
    if (pid == 0) {
        const int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        std::vector<char*> cargs;
        for (auto& a : argv) cargs.push_back(a.data());
        cargs.push_back(nullptr);
        execv(cargs[0], cargs.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ToolRun r;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = slurp_file(out);
    r.err = slurp_file(err);
    return r;
}

}  // namespace nocstor::testing
