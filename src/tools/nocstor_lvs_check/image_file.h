// Read-only access to the file or block device that holds an lvstore, for nocstor-lvs-check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace nocstor::lvs_tool {

class ImageFile {
  public:
    // Opens `path` O_RDONLY and finds its size (fstat, or BLKGETSIZE64 for a block device).
    // Null with *err when that fails.
    static std::unique_ptr<ImageFile> open(const std::string& path, std::string* err);
    ~ImageFile();
    ImageFile(const ImageFile&) = delete;
    ImageFile& operator=(const ImageFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t size() const { return size_; }
    // Reads exactly len bytes at byte `off`; false with *err on an error or past the end.
    bool read(uint64_t off, void* buf, size_t len, std::string* err) const;

  private:
    ImageFile(std::string path, int fd, uint64_t size);
    std::string path_;
    int fd_;
    uint64_t size_;
};

}  // namespace nocstor::lvs_tool
