package prometheus

// What the host test and the guest driver agree on (built with and without
// the labvm tag).

// driverEnv, set in the guest's environment, makes TestGuestDriver run.
const driverEnv = "KFW_PROMETHEUS_DRIVER"

// Ports inside the VM, forwarded to free ports of the host's loopback.
const (
	guestExporterPort = 10170
	guestControlPort  = 10171
)

// stepResult is the driver's answer to POST /step/NAME.
type stepResult struct {
	Result string `json:"result"` // what the step did, or why it failed
	Failed bool   `json:"failed"`
}
