package secure

// windowWords sizes the replay window: 64 words of 64 bits, so packets up to
// 4032 positions behind the newest are still accepted once. KCP reorders
// little, but a burst on a fast link can overtake a few hundred packets.
const windowWords = 64

// replayWindow is the bitmap of RFC 6479: a ring of words indexed by
// counter/64, with whole words cleared as the window slides.
type replayWindow struct {
	top    uint64 // highest counter accepted + 1 (0: none yet)
	bitmap [windowWords]uint64
}

const windowSize = (windowWords - 1) * 64

// check reports whether counter would be accepted, without recording it.
func (w *replayWindow) check(counter uint64) bool {
	if counter >= w.top {
		return true
	}
	if w.top-counter > windowSize {
		return false
	}
	word := (counter / 64) % windowWords
	return w.bitmap[word]&(1<<(counter%64)) == 0
}

// update records counter and reports whether it was new.
func (w *replayWindow) update(counter uint64) bool {
	if !w.check(counter) {
		return false
	}
	if counter >= w.top {
		// Clear the words that slide into the window.
		var cur uint64 // word of the newest counter accepted so far
		if w.top > 0 {
			cur = (w.top - 1) / 64
		} else {
			w.bitmap[0] = 0
		}
		next := counter / 64
		for i := cur + 1; i <= next && i-cur <= windowWords; i++ {
			w.bitmap[i%windowWords] = 0
		}
		w.top = counter + 1
	}
	w.bitmap[(counter/64)%windowWords] |= 1 << (counter % 64)
	return true
}
