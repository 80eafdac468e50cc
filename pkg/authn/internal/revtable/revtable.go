// Package revtable is the table behind authn.RevocationSet: hashed token
// ids and their expiries in 12 bytes a slot. It is not safe for concurrent
// use; the set locks around it.
package revtable

import (
	"math"
	"math/bits"
)

// Table is an open-addressing hash table of 64-bit keys (0 marks an empty
// slot) and uint32 expiries, probed linearly; deleting shifts the rest of
// the run back rather than leaving tombstones, so its size depends only
// on the entries it holds, not on how many came and went. The keys are
// hashes already: their low bits index it.
type Table struct {
	keys []uint64
	exps []uint32
	n    int
}

// Size is the fewest slots, a power of two and at least 64, that hold
// maxEntries at three-quarters load.
func Size(maxEntries int) int {
	need := (uint64(max(maxEntries, 0))*4 + 2) / 3
	return 1 << bits.Len64(max(need, 64)-1)
}

// Init empties the table and gives it slots slots, a power of two.
func (t *Table) Init(slots int) {
	t.keys, t.exps, t.n = make([]uint64, slots), make([]uint32, slots), 0
}

// Capacity is the table's slots; 0 before Init.
func (t *Table) Capacity() int { return len(t.keys) }

// Len is the entries the table holds.
func (t *Table) Len() int { return t.n }

func (t *Table) find(k uint64) (int, bool) {
	mask := uint64(len(t.keys) - 1)
	for i := k & mask; ; i = (i + 1) & mask {
		switch t.keys[i] {
		case k:
			return int(i), true
		case 0:
			return int(i), false
		}
	}
}

// Has reports whether k is there.
func (t *Table) Has(k uint64) bool {
	_, ok := t.find(k)
	return ok
}

// Raise gives k the later of its expiry and exp, and reports whether k
// was there.
func (t *Table) Raise(k uint64, exp uint32) bool {
	i, ok := t.find(k)
	if ok && t.exps[i] < exp {
		t.exps[i] = exp
	}
	return ok
}

// Insert adds k, which is not there; the table must have a free slot.
func (t *Table) Insert(k uint64, exp uint32) {
	i, _ := t.find(k)
	t.keys[i], t.exps[i] = k, exp
	t.n++
}

// Grow doubles the table, up to limit slots.
func (t *Table) Grow(limit int) {
	if len(t.keys) >= limit {
		return
	}
	old := *t
	t.Init(2 * len(old.keys))
	for i, k := range old.keys {
		if k != 0 {
			t.Insert(k, old.exps[i])
		}
	}
}

// Sweep deletes the entries that expire before now and returns the
// earliest expiry among the rest (now when none are left).
func (t *Table) Sweep(now uint32) uint32 {
	soonest := uint32(math.MaxUint32)
	for i := 0; i < len(t.keys); {
		if t.keys[i] != 0 && t.exps[i] < now {
			// The slot is filled again from further along the run: look at
			// it again.
			t.delete(i)
			continue
		}
		if t.keys[i] != 0 {
			soonest = min(soonest, t.exps[i])
		}
		i++
	}
	if t.n == 0 {
		return now
	}
	return soonest
}

// delete empties slot i and moves back the entries after it that would no
// longer be found past the hole.
func (t *Table) delete(i int) {
	mask := len(t.keys) - 1
	hole := i
	for j := (i + 1) & mask; t.keys[j] != 0; j = (j + 1) & mask {
		home := int(t.keys[j]) & mask
		// The entry at j may move to the hole unless its home lies
		// cyclically in (hole, j].
		if (j-home)&mask >= (j-hole)&mask {
			t.keys[hole], t.exps[hole] = t.keys[j], t.exps[j]
			hole = j
		}
	}
	t.keys[hole], t.exps[hole] = 0, 0
	t.n--
}
