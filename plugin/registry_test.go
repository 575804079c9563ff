package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRegistryFindsInstancesByContextAndThread(t *testing.T) {
	a := &instance{tid: 101, name: "a"}
	b := &instance{tid: 102, name: "b"}
	register(a)
	register(b)
	assert.NotNil(t, a.handle)
	assert.NotEqual(t, a.handle, b.handle)
	assert.Same(t, a, byHandle(a.handle))
	assert.Same(t, b, byThread(102))
	assert.Nil(t, byThread(999), "two instances: an unknown thread is ambiguous")
	assert.Same(t, a, threadTaken(101))
	assert.Len(t, all(), 2)

	unregister(b)
	assert.Nil(t, byHandle(b.handle))
	assert.Same(t, a, byThread(999), "one instance is unambiguous (Fluent Bit before 4.1)")
	unregister(a)
	assert.Empty(t, all())
}
