// Package big is a sizecheck fixture: 35 lines, Wide has 6 methods, Narrow 1.
package big

type Wide struct{}

func (Wide) M1() {}

func (Wide) M2() {}

func (Wide) M3() {}

func (Wide) M4() {}

func (Wide) M5() {}

func (Wide) M6() {}

type Narrow struct{}

func (*Narrow) N() {}

var v1 = 1
var v2 = 2
var v3 = 3
var v4 = 4
var v5 = 5
var v6 = 6
var v7 = 7
var v8 = 8
var v9 = 9
var v10 = 10
var v11 = 11
var v12 = 12

// The end.
