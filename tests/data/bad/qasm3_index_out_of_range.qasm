OPENQASM 3.0;
include "stdgates.inc";
qubit[1] q;
bit[1] c;
h q[7];
c = measure q;
