/* placeholder until the wire layer lands */
int toe_wire_placeholder_(void);
int toe_wire_placeholder_(void) { return 0; }
