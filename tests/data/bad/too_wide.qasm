OPENQASM 2.0;
include "qelib1.inc";
qreg q[200];
creg c[200];
x q[0];
measure q -> c;
