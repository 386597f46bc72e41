#!/usr/bin/env bash
# fetch-vocab.sh - puts the real Gemma 4 tokenizer (llama.cpp's models/ggml-vocab-gemma-4.gguf, 15 MB, with its
# .inp/.out test vectors) and llama.cpp's revised Gemma 4 chat templates into a cache dir, and prints the
# path of the .gguf. The tokenizer tests find it there (or via GEMMA4_VOCAB=/path/to/ggml-vocab-gemma-4.gguf).
#
#   scripts/fetch-vocab.sh [CACHE_DIR]        default: $GEMMA4_VOCAB_DIR or $HOME/.cache/gemma4/vocab
#
# Source: llama.cpp commit de3ff81, shipped inside the npm package node-llama-cpp@3.22.1 as a git bundle
# (package/llama/gitRelease.bundle). Order of preference:
#   1. files already in the cache dir (verified by SHA-256);
#   2. an existing llama.cpp checkout: $ORACLE_LLAMA_SRC, or $HOME/.cache/gemma4-oracle/llama.cpp (the
#      oracle of shared/oracle/setup.sh);
#   3. the npm tarball: $ORACLE_NLC_TGZ, $HOME/.cache/gemma4-oracle/npm/node-llama-cpp-3.22.1.tgz, or
#      `npm pack node-llama-cpp@3.22.1`; only the needed files are read out of the bundle (a bare clone,
#      then `git show`), there is no checkout.
# Needs: sha256sum, and for step 3 npm (unless a tarball is given), tar and git.
set -euo pipefail

NLC_VERSION="3.22.1"
LLAMA_COMMIT="de3ff815ea7d559ee917f063901b8986f038abc6"
DIR="${1:-${GEMMA4_VOCAB_DIR:-$HOME/.cache/gemma4/vocab}}"
# path in llama.cpp            sha256
FILES=(
    "models/ggml-vocab-gemma-4.gguf             58b1ba0b57f3b4d7c468ba4ffd91ad85190346a3d7ad7e71d1cabaae8a14bb65"
    "models/ggml-vocab-gemma-4.gguf.inp         0528aa007b06965f980181d252b5dff7bb170a77af6157bd48bba56885374448"
    "models/ggml-vocab-gemma-4.gguf.out         ba8c596bcd05e97e62566fa994b42eeaeffd6a4e4b4a4abe7b5b689aa6b43bf3"
    "models/templates/google-gemma-4-31B-it.jinja             85a08664d16d8f3be4416c92427b3ac10df1024ac566cc0b4bc3bab409393f98"
    "models/templates/google-gemma-4-31B-it-interleaved.jinja 65f93a25708c952457106a30e185ba7beffddd726121c8d7e3f3e08b23c16c67"
)

die() { echo "fetch-vocab.sh: error: $*" >&2; exit 1; }
log() { echo "fetch-vocab.sh: $*" >&2; }

sha_ok() {  # $1 file, $2 expected sha256
    [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}
all_present() {
    local entry path sha
    for entry in "${FILES[@]}"; do
        read -r path sha <<<"$entry"
        sha_ok "$DIR/$(basename "$path")" "$sha" || return 1
    done
}

mkdir -p "$DIR"
if all_present; then
    echo "$DIR/ggml-vocab-gemma-4.gguf"
    exit 0
fi

# ---- 2. an existing llama.cpp source tree
for src in "${ORACLE_LLAMA_SRC:-}" "$HOME/.cache/gemma4-oracle/llama.cpp"; do
    [ -n "$src" ] && [ -f "$src/models/ggml-vocab-gemma-4.gguf" ] || continue
    log "copying from $src"
    for entry in "${FILES[@]}"; do
        read -r path sha <<<"$entry"
        if sha_ok "$src/$path" "$sha"; then
            cp "$src/$path" "$DIR/$(basename "$path").tmp.$$" && mv "$DIR/$(basename "$path").tmp.$$" "$DIR/$(basename "$path")"
        fi
    done
    if all_present; then
        echo "$DIR/ggml-vocab-gemma-4.gguf"
        exit 0
    fi
    log "$src does not hold the expected files (another llama.cpp version?); trying the npm package"
done

# ---- 3. the npm package's git bundle
work="$(mktemp -d "${TMPDIR:-/tmp}/fetch-vocab.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tgz="${ORACLE_NLC_TGZ:-}"
if [ -z "$tgz" ] && [ -f "$HOME/.cache/gemma4-oracle/npm/node-llama-cpp-$NLC_VERSION.tgz" ]; then
    tgz="$HOME/.cache/gemma4-oracle/npm/node-llama-cpp-$NLC_VERSION.tgz"
fi
if [ -z "$tgz" ]; then
    command -v npm >/dev/null 2>&1 || die "npm is needed to download node-llama-cpp@$NLC_VERSION (or set ORACLE_NLC_TGZ)"
    log "npm pack node-llama-cpp@$NLC_VERSION"
    (cd "$work" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null) || die "npm pack failed"
    tgz="$work/node-llama-cpp-$NLC_VERSION.tgz"
fi
case "$tgz" in
    *.bundle) bundle="$tgz" ;;
    *)
        tar -xzf "$tgz" -C "$work" package/llama/gitRelease.bundle || die "$tgz has no package/llama/gitRelease.bundle"
        bundle="$work/package/llama/gitRelease.bundle" ;;
esac
log "reading $bundle"
git clone --quiet --bare "$bundle" "$work/llama.git" || die "git clone --bare of the bundle failed"
rev="$(git --git-dir="$work/llama.git" rev-parse HEAD)"
[ "$rev" = "$LLAMA_COMMIT" ] || log "warning: bundle HEAD is $rev, expected $LLAMA_COMMIT"
for entry in "${FILES[@]}"; do
    read -r path sha <<<"$entry"
    out="$DIR/$(basename "$path")"
    git --git-dir="$work/llama.git" show "HEAD:$path" >"$out.tmp.$$" || die "$path is not in the bundle"
    sha_ok "$out.tmp.$$" "$sha" || die "$path: SHA-256 mismatch"
    mv "$out.tmp.$$" "$out"
done
all_present || die "files incomplete in $DIR"
echo "$DIR/ggml-vocab-gemma-4.gguf"
