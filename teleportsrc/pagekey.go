package teleportsrc

import (
	"strings"

	"github.com/gravitational/trace"
)

// refusedKeyTexts are what Teleport's audit backends answer to a page key
// they cannot use (one from before an Auth Service upgrade or a backend
// migration, or from another Auth Service):
//   - Athena (lib/events/athena/querier.go SearchEvents): "unsupported keyset format: …"
//   - Firestore (lib/events/firestoreevents SearchEvents): "failed to parse startKey, expected integer but found: …"
//   - DynamoDB (lib/events/dynamoevents getCheckpointFromStartKey): the key is
//     JSON, and its decoding error is passed on ("invalid character … looking
//     for beginning of value", "json: cannot unmarshal …"); DynamoDB itself
//     rejects a stale ExclusiveStartKey with "The provided starting key is invalid".
var refusedKeyTexts = []string{
	"unsupported keyset format",
	"failed to parse startkey",
	"looking for beginning of value",
	"json: cannot unmarshal",
	"the provided starting key is invalid",
}

// KeyRefused reports whether err is the server refusing a page key the
// search sent. Retrying with the same key fails forever; reading again from
// the position, without a key, loses and repeats nothing.
func KeyRefused(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(trace.UserMessage(err) + " " + err.Error())
	for _, t := range refusedKeyTexts {
		if strings.Contains(msg, t) {
			return true
		}
	}
	return false
}
