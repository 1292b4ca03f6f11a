// -pidfile: written once the VM exists, removed at exit if it still holds our pid.
#pragma once

#include <string>

namespace virga {

void WritePidfile(const std::string& path);
void RemovePidfile(const std::string& path);

}  // namespace virga
