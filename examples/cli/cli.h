// The gemma4 command-line tool: one binary, one file per subcommand (cmd_*.cpp).
//
// A subcommand file registers itself at static-initialisation time:
//     static const bool kRegistered = gemma4::cli::register_command({"info", "summary", usage, run_info});
// so adding a subcommand touches no other file. Library errors (gemma4::Error) are caught in main
// and printed as one line "gemma4 NAME: MESSAGE" with exit code 1; usage errors exit with 2.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gemma4::cli {

class Args;

struct Command {
    const char* name;
    const char* summary;  // one line for `gemma4 --help`
    const char* usage;    // full usage text for `gemma4 NAME --help`
    int (*run)(Args& args);
};

bool register_command(const Command& command);

/// Thrown for bad command-line usage; main prints the message and the usage, exit code 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Minimal option parser: `--name value`, `--name=value`, boolean `--flag`, repeatable options,
/// and positionals. Call the accessors for every option you know, then finish() rejects the rest.
class Args {
public:
    Args(std::vector<std::string> argv) : argv_(std::move(argv)), used_(argv_.size(), false) {}

    /// True if `--name` is present (a boolean flag).
    bool flag(std::string_view name);
    /// The value of `--name`, if given (last one wins).
    std::optional<std::string> value(std::string_view name);
    /// All values of a repeatable `--name`, in order.
    std::vector<std::string> values(std::string_view name);
    /// All values of several repeatable options, interleaved in command-line order: (name, value) pairs.
    /// (Defined in common.cpp, beside its one user, the --image/--audio parser.)
    std::vector<std::pair<std::string, std::string>> ordered_values(std::initializer_list<std::string_view> names);
    std::string required(std::string_view name);
    int64_t integer(std::string_view name, int64_t fallback);
    double number(std::string_view name, double fallback);
    /// The remaining positional arguments (anything not starting with "--", after options are read).
    std::vector<std::string> positionals();
    /// Throws UsageError if an argument was not consumed.
    void finish();

private:
    std::vector<std::string> argv_;
    std::vector<bool> used_;
};

}  // namespace gemma4::cli
