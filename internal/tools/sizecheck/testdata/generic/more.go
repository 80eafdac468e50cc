package generic

func (*Plain) Y() {}

func (List[E]) Last() {}
