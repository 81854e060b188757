# shellcheck shell=bash
# Sourced by the benchmarks on the Brown Corpus. brown_dataset BUILD_DIR
# TOKENIZER prepares data/brown (bytes) or data/brown-gpt2 (GPT-2 BPE) from
# the corpus in data/downloads (fetched by deploy/fetch-corpus.sh), tags
# stripped, when it is missing, and prints the dataset's absolute path.
brown_dataset() {
  local build=$1 tokenizer=$2 data=data/brown
  if [ "$tokenizer" = gpt2 ]; then
    data=data/brown-gpt2
    bash deploy/fetch-tokenizer.sh >/dev/null
  fi
  if [ ! -f "$data/meta.json" ]; then
    bash deploy/fetch-corpus.sh >&2
    "$build/client/twistctl" prepare --input=data/downloads/package --output="$data" \
      --strip_tags --tokenizer="$tokenizer" >&2
  fi
  readlink -f "$data"
}
