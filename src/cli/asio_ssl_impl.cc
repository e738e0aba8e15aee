// asio::ssl's compiled part (ASIO_SEPARATE_COMPILATION), for `portico server`'s TLS on --listen
// (src/cli/server.cc). The data plane's TLS does not use asio::ssl (src/proxy/tls).
#include <asio/ssl/impl/src.hpp>
