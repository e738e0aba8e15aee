// Precompiled header for the data plane: asio is large and every proxy file includes it.
#pragma once
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
