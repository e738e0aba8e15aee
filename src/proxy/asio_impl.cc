// asio's compiled part (ASIO_SEPARATE_COMPILATION): built once here instead of in every file.
#include <asio/impl/src.hpp>
