// Runs a fuzz target over saved inputs without libFuzzer, so that any compiler can check the
// committed corpus and a crash reproducer can be replayed under a debugger.
//
//   <target>_replay PATH...
//
// Each PATH is a file or a directory whose regular files are all replayed, in name order. Any
// crash or sanitizer report ends the run, as it would under libFuzzer. Exits non-zero when a
// path is missing or when there was nothing to replay, so that a lost corpus fails the test.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool ReadFile(const fs::path& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return !in.bad();
}

// The inputs under `path`: the file itself, or the regular files of the directory, sorted.
bool ListInputs(const fs::path& path, std::vector<fs::path>& out) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    out.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, ec)) {
    std::fprintf(stderr, "replay: %s: no such file or directory\n", path.c_str());
    return false;
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(path, ec)) {
    if (entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  if (ec) {
    std::fprintf(stderr, "replay: %s: %s\n", path.c_str(), ec.message().c_str());
    return false;
  }
  std::sort(files.begin(), files.end());
  out.insert(out.end(), files.begin(), files.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  int status = 0;
  size_t replayed = 0;
  size_t bytes = 0;
  for (int i = 1; i < argc; ++i) {
    std::vector<fs::path> inputs;
    if (!ListInputs(argv[i], inputs)) {
      status = 1;
      continue;
    }
    for (const fs::path& input : inputs) {
      std::string data;
      if (!ReadFile(input, data)) {
        std::fprintf(stderr, "replay: %s: cannot read\n", input.c_str());
        status = 1;
        continue;
      }
      // A copy of exactly the input's size, so that reading past the end is caught by ASan.
      std::vector<uint8_t> copy(data.begin(), data.end());
      LLVMFuzzerTestOneInput(copy.data(), copy.size());
      ++replayed;
      bytes += data.size();
    }
  }
  std::printf("replay: replayed %zu inputs (%zu bytes)\n", replayed, bytes);
  if (replayed == 0) {
    std::fprintf(stderr, "replay: no inputs found: the corpus is empty or missing\n");
    return 1;
  }
  return status;
}
