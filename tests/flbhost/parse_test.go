package flbhost

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParseReply(t *testing.T) {
	r := parseReply(`ok init 3 ret=1 name=teleport.3 alias="a \"quoted\" \\ alias" tid=42`)
	assert.Equal(t, []string{"3"}, r.pos)
	assert.Equal(t, map[string]string{
		"ret": "1", "name": "teleport.3", "alias": `a "quoted" \ alias`, "tid": "42",
	}, r.kv)
	assert.Equal(t, 42, r.int("tid"))

	r = parseReply("err collect 0 invalid msgpack at offset 18: event #2: wrong root size: 3 elements (must be 2)")
	assert.Equal(t, "0", r.pos[0])

	assert.Equal(t, `"a \"b\" \\"`, quoteValue(`a "b" \`))
	assert.Equal(t, []string{"init", `k=a "b" \`, "x="}, splitTokens(`init k=`+quoteValue(`a "b" \`)+` x=""`))
}
