package dashboard

import (
	"math"
)

// Experiment statistics: each variant's conversion rate has the posterior
// Beta(1 + conversions, 1 + exposures − conversions) (a uniform prior).
// Everything is computed deterministically by numerical integration, so
// the same data always give the same answer.

type betaDist struct{ a, b float64 }

// logPDF is the log density at x in (0, 1).
func (d betaDist) logPDF(x float64) float64 {
	la, _ := math.Lgamma(d.a)
	lb, _ := math.Lgamma(d.b)
	lab, _ := math.Lgamma(d.a + d.b)
	return (d.a-1)*math.Log(x) + (d.b-1)*math.Log1p(-x) + lab - la - lb
}

// cdf is the regularized incomplete beta function I_x(a, b), by the
// continued fraction (modified Lentz), using the symmetry
// I_x(a,b) = 1 − I_{1−x}(b,a) where it converges faster.
func (d betaDist) cdf(x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	a, b := d.a, d.b
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaCF(a, b, x) / a
	}
	return 1 - front*betaCF(b, a, 1-x)/b
}

// betaCF evaluates the continued fraction of the incomplete beta function.
func betaCF(a, b, x float64) float64 {
	const tiny = 1e-300
	qab, qap, qam := a+b, a+1, a-1
	c, d := 1.0, 1-qab*x/qap
	if math.Abs(d) < tiny {
		d = tiny
	}
	d = 1 / d
	h := d
	for m := 1; m <= 10000; m++ {
		fm := float64(m)
		m2 := 2 * fm
		aa := fm * (b - fm) * x / ((qam + m2) * (a + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		h *= d * c
		aa = -(a + fm) * (qab + fm) * x / ((a + m2) * (qap + m2))
		d = 1 + aa*d
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = 1 + aa/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return h
}

// quantile inverts the cdf by bisection (to 1e-12).
func (d betaDist) quantile(p float64) float64 {
	lo, hi := 0.0, 1.0
	for i := 0; i < 200 && hi-lo > 1e-12; i++ {
		mid := (lo + hi) / 2
		if d.cdf(mid) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// probabilityBest gives, for each variant, P(its rate is the highest) =
// ∫ f_i(x) Π_{j≠i} F_j(x) dx, by Simpson's rule over the range where any
// of the posteriors has mass.
func probabilityBest(ds []betaDist) []float64 {
	out := make([]float64, len(ds))
	if len(ds) == 0 {
		return out
	}
	if len(ds) == 1 {
		out[0] = 1
		return out
	}
	lo, hi := 1.0, 0.0
	for _, d := range ds {
		lo = math.Min(lo, d.quantile(1e-10))
		hi = math.Max(hi, d.quantile(1-1e-10))
	}
	lo, hi = math.Max(lo, 1e-12), math.Min(hi, 1-1e-12)
	const n = 4000 // even
	step := (hi - lo) / n
	cdfs := make([]float64, len(ds))
	for k := 0; k <= n; k++ {
		x := lo + float64(k)*step
		w := 2.0
		switch {
		case k == 0 || k == n:
			w = 1
		case k%2 == 1:
			w = 4
		}
		for j, d := range ds {
			cdfs[j] = d.cdf(x)
		}
		for i, d := range ds {
			v := math.Exp(d.logPDF(x))
			for j := range ds {
				if j != i {
					v *= cdfs[j]
				}
			}
			out[i] += w * v
		}
	}
	sum := 0.0
	for i := range out {
		out[i] *= step / 3
		sum += out[i]
	}
	if sum > 0 { // remove the integration error's drift from 1
		for i := range out {
			out[i] /= sum
		}
	}
	return out
}
