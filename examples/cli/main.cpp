// gemma4: command-line entry point. Dispatches to the registered subcommands.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "cli.h"
#include "gemma4/error.h"

namespace gemma4::cli {
namespace {

std::map<std::string, Command>& registry() {
    static std::map<std::string, Command> commands;
    return commands;
}

bool is_option(const std::string& s) { return s.size() > 2 && s[0] == '-' && s[1] == '-'; }

}  // namespace

bool register_command(const Command& command) {
    registry()[command.name] = command;
    return true;
}

bool Args::flag(std::string_view name) {
    bool found = false;
    for (size_t i = 0; i < argv_.size(); ++i) {
        if (argv_[i] == name) {
            used_[i] = true;
            found = true;
        }
    }
    return found;
}

std::vector<std::string> Args::values(std::string_view name) {
    std::vector<std::string> out;
    const std::string prefix = std::string(name) + "=";
    for (size_t i = 0; i < argv_.size(); ++i) {
        if (used_[i]) continue;
        if (argv_[i] == name) {
            if (i + 1 >= argv_.size()) throw UsageError(fmt::format("option {} needs a value", name));
            used_[i] = used_[i + 1] = true;
            out.push_back(argv_[i + 1]);
            ++i;
        } else if (argv_[i].rfind(prefix, 0) == 0) {
            used_[i] = true;
            out.push_back(argv_[i].substr(prefix.size()));
        }
    }
    return out;
}

std::optional<std::string> Args::value(std::string_view name) {
    auto all = values(name);
    if (all.empty()) return std::nullopt;
    return all.back();
}

std::string Args::required(std::string_view name) {
    auto v = value(name);
    if (!v) throw UsageError(fmt::format("missing required option {}", name));
    return *v;
}

int64_t Args::integer(std::string_view name, int64_t fallback) {
    auto v = value(name);
    if (!v) return fallback;
    try {
        size_t used = 0;
        long long x = std::stoll(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing characters");
        return x;
    } catch (const std::exception&) {
        throw UsageError(fmt::format("option {}: '{}' is not an integer", name, *v));
    }
}

double Args::number(std::string_view name, double fallback) {
    auto v = value(name);
    if (!v) return fallback;
    try {
        size_t used = 0;
        double x = std::stod(*v, &used);
        if (used != v->size()) throw std::invalid_argument("trailing characters");
        return x;
    } catch (const std::exception&) {
        throw UsageError(fmt::format("option {}: '{}' is not a number", name, *v));
    }
}

std::vector<std::string> Args::positionals() {
    std::vector<std::string> out;
    for (size_t i = 0; i < argv_.size(); ++i) {
        if (!used_[i] && !is_option(argv_[i])) {
            used_[i] = true;
            out.push_back(argv_[i]);
        }
    }
    return out;
}

void Args::finish() {
    for (size_t i = 0; i < argv_.size(); ++i) {
        if (!used_[i]) throw UsageError(fmt::format("unexpected argument '{}'", argv_[i]));
    }
}

}  // namespace gemma4::cli

int main(int argc, char** argv) {
    using namespace gemma4::cli;
    auto print_help = [] {
        std::fputs("usage: gemma4 COMMAND [options]   (gemma4 COMMAND --help for details)\n\ncommands:\n", stdout);
        for (const auto& [name, cmd] : registry()) std::fputs(fmt::format("  {:<12} {}\n", name, cmd.summary).c_str(), stdout);
    };
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    auto it = registry().find(argv[1]);
    if (it == registry().end()) {
        std::fprintf(stderr, "gemma4: unknown command '%s'\n", argv[1]);
        print_help();
        return 2;
    }
    const Command& cmd = it->second;
    std::vector<std::string> rest(argv + 2, argv + argc);
    if (std::find(rest.begin(), rest.end(), "--help") != rest.end()) {
        std::fputs(cmd.usage, stdout);
        return 0;
    }
    try {
        Args args(std::move(rest));
        return cmd.run(args);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "gemma4 %s: %s\n\n%s", cmd.name, e.what(), cmd.usage);
        return 2;
    } catch (const gemma4::Error& e) {
        std::fprintf(stderr, "gemma4 %s: error: %s\n", cmd.name, e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "gemma4 %s: error: %s\n", cmd.name, e.what());
        return 1;
    }
}
