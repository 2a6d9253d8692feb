// Read-only access to an image file or a block device for the offline tools (nocstor-raid,
// nocstor-lvs-check): open it, find its size, read exact byte ranges.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace nocstor::tools {

struct ImageFileOptions {
    bool sequential = false;      // posix_fadvise(SEQUENTIAL): the file is read front to back
    bool path_in_errors = false;  // read errors start with "<path>: "
};

class ImageFile {
  public:
    using Options = ImageFileOptions;

    // Opens `path` O_RDONLY and finds its size (fstat, or BLKGETSIZE64 for a block device).
    // Null with *err when that fails.
    static std::unique_ptr<ImageFile> open(const std::string& path, std::string* err,
                                           Options opts = {});
    ~ImageFile();
    ImageFile(const ImageFile&) = delete;
    ImageFile& operator=(const ImageFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    // Reads exactly len bytes at byte `off`; false with *err on an error or past the end.
    bool read(uint64_t off, void* buf, size_t len, std::string* err) const;

  private:
    ImageFile(std::string path, int fd, uint64_t size, Options opts);
    std::string path_;
    int fd_;
    uint64_t size_;
    Options opts_;
};

}  // namespace nocstor::tools
