// Package ts holds the data-modelling guide's classes as TypeScript
// modules (*.ts), the guide's code assembled with as few added lines as
// possible, and dura.d.ts, the types an editor needs. Its tests deploy
// each module to a node and run the HTTP checks of its Go twin in
// package examples.
package ts
