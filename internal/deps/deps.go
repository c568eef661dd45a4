package deps
import (
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/testutil"
 _ "github.com/prometheus/procfs"
 _ "github.com/mdlayher/netlink"
 _ "github.com/mdlayher/netlink/nltest"
 _ "github.com/mdlayher/genetlink"
 _ "github.com/mdlayher/genetlink/genltest"
 _ "github.com/alecthomas/kingpin/v2"
 _ "github.com/prometheus/exporter-toolkit/web"
 _ "github.com/prometheus/common/promslog"
 _ "github.com/prometheus/common/version"
 _ "golang.org/x/sys/unix"
)
