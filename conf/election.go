package conf

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Election is the leader-election part of the settings: several Fluent
// Bit pods (a DaemonSet) run the same input and one of them exports.
type Election struct {
	Kubernetes     bool   // leader_election kubernetes; false = off
	LeaseName      string // "" = derived from addr and the input's alias
	LeaseNamespace string // "" = the pod's own (service account)
	Kubeconfig     string // "" = in-cluster credentials
	LeaseDuration  time.Duration
	RenewDeadline  time.Duration
	RetryPeriod    time.Duration
	// HandoverInterval is how often the leader saves its position in the
	// Kubernetes API; ReplayMargin how far before the handed-over position
	// a successor reads again after a holder that did not stop cleanly.
	HandoverInterval time.Duration
	ReplayMargin     time.Duration
}

// Leader-election modes.
const (
	ElectionOff        = "off"
	ElectionKubernetes = "kubernetes"
)

// dnsSubdomain is what Kubernetes accepts as a Lease or ConfigMap name.
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// durationIn applies a duration from lo to hi to a field.
func durationIn(lo, hi time.Duration, field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) (err error) {
		*field(c), err = parseDurationIn(v, lo, hi)
		return err
	}
}

var electionSettings = []setting{
	{key: "leader_election", def: ElectionOff, accepts: "off, or kubernetes (one exporter among the pods that run this input, chosen through a Lease)",
		apply: func(c *Config, v string) error {
			switch strings.ToLower(v) {
			case ElectionOff:
				return nil
			case ElectionKubernetes:
				c.Election.Kubernetes = true
				return nil
			}
			return errors.New("not a leader election mode")
		}},
	{key: "lease_name", unset: "derived", accepts: "a Kubernetes object name (lower case letters, digits, '-' and '.', at most 253), used for the Lease and the position ConfigMap",
		apply: func(c *Config, v string) error {
			c.Election.LeaseName = v
			if len(v) > 253 || !dnsSubdomain.MatchString(v) {
				return errors.New("not a Kubernetes object name")
			}
			return nil
		}},
	{key: "lease_namespace", unset: "own", accepts: "a Kubernetes namespace (default: the pod's own)",
		apply: func(c *Config, v string) error {
			c.Election.LeaseNamespace = v
			if len(v) > 63 || !dnsSubdomain.MatchString(v) || strings.Contains(v, ".") {
				return errors.New("not a Kubernetes namespace name")
			}
			return nil
		}},
	{key: "kubeconfig", unset: "in-cluster", accepts: "path of a kubeconfig file (default: the pod's service account)",
		apply: func(c *Config, v string) error { c.Election.Kubeconfig = v; return nil }},
	{key: "lease_duration", def: "15s", accepts: "a duration from 2s to 5m, longer than renew_deadline",
		apply: durationIn(2*time.Second, 5*time.Minute, func(c *Config) *time.Duration { return &c.Election.LeaseDuration })},
	{key: "renew_deadline", def: "10s", accepts: "a duration from 1s to 5m, shorter than lease_duration and longer than retry_period",
		apply: durationIn(time.Second, 5*time.Minute, func(c *Config) *time.Duration { return &c.Election.RenewDeadline })},
	{key: "retry_period", def: "2s", accepts: "a duration from 100ms to 1m, shorter than renew_deadline",
		apply: durationIn(100*time.Millisecond, time.Minute, func(c *Config) *time.Duration { return &c.Election.RetryPeriod })},
	{key: "handover_interval", def: "5s", accepts: "a duration from 1s to 5m",
		apply: durationIn(time.Second, 5*time.Minute, func(c *Config) *time.Duration { return &c.Election.HandoverInterval })},
	{key: "replay_margin", def: "1m", accepts: "a duration from 0 (off) to 24h",
		apply: durationIn(0, 24*time.Hour, func(c *Config) *time.Duration { return &c.Election.ReplayMargin })},
}

// checkElection checks the lease timing together.
func (c *Config) checkElection() []error {
	e := c.Election
	if !e.Kubernetes {
		return nil
	}
	if e.RenewDeadline >= e.LeaseDuration || e.RetryPeriod >= e.RenewDeadline {
		return []error{fmt.Errorf("settings retry_period %s, renew_deadline %s and lease_duration %s: each must be shorter than the next (a holder stops when it could not renew for renew_deadline; the others take over after lease_duration)",
			e.RetryPeriod, e.RenewDeadline, e.LeaseDuration)}
	}
	return nil
}
