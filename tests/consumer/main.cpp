// Links against the installed libgemma4 and uses only its public headers.
#include <cstdio>

#include <gemma4/gemma4.h>

int main() {
    try {
        throw gemma4::Error(gemma4::ErrorCode::invalid_file, "probe");
    } catch (const gemma4::Error& e) {
        std::printf("consumer: linked gemma4 %s, error code %s\n", gemma4::version(), gemma4::to_string(e.code()));
        return 0;
    }
}
